"""The model card: what a bundle is, what it was trained on, and how well it predicts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from training.evaluate import Metrics, best_baseline, format_table

LICENSE = ("The training data is the Classical Piano MIDI collection of piano-midi.de by "
           "Bernd Krueger, published under Creative Commons BY-SA 3.0 Germany "
           "(https://creativecommons.org/licenses/by-sa/3.0/de/). This model is derived "
           "from it and carries that attribution.")


def write_card(card: Path, model_path: Path, facts: dict[str, Any], rows: Sequence[Metrics]) -> None:
    model_row, best = rows[0], best_baseline(rows)
    beats = model_row.nll < best.nll
    verdict = (f"The model beats the best n-gram baseline ({best.name}) on held-out NLL: "
               f"{model_row.nll:.4f} vs {best.nll:.4f} nats, ratio {model_row.nll / best.nll:.3f}."
               if beats else
               f"The model does **not** beat the best n-gram baseline ({best.name}) on held-out NLL: "
               f"{model_row.nll:.4f} vs {best.nll:.4f} nats. It is shipped as the best this "
               "configuration reached; see docs/ for the work on better configurations.")
    val = facts.get("val_pieces") or []
    check = facts.get("export_check", {})
    curves = model_path.with_name(model_path.stem + "-training") / "curves.png"
    text = f"""# Model card: `{model_path.name}`

A next-token model for mididuet: given the last 32 note/chord tokens, it gives the
probability of each token in its vocabulary coming next. The daemon samples its
answers from these probabilities.

## Configuration
- Architecture: `{facts.get("arch")}` — the reference notebook's Conv1D "WaveNet"
  (Embedding 100 → Conv1D 64/128/256, dilations 1/2/4, causal → GlobalMaxPool → Dense 256 →
  softmax), {facts.get("parameters"):,} parameters.
- Vocabulary: {facts.get("vocabulary_size")} tokens — those seen at least
  {facts.get("min_count")} times in the training pieces.
- Training: Adam, batch {facts.get("batch_size")}, {facts.get("epochs_run")} epochs run, best
  validation loss at epoch {facts.get("best_epoch")} (kept; early stopping), seed {facts.get("seed")},
  {facts.get("train_seconds")} s on a 2-core CPU.
- Export: tf2onnx, checked against Keras on {int(check.get("windows", 0))} validation windows: max
  |Δprob| {check.get("max_abs_diff", float("nan")):.1e}, same argmax on {check.get("argmax_agreement", 0):.2%}.

## Data
- Corpus: `{facts.get("corpus")}` ({facts.get("pieces")} pieces, read with the `{facts.get("reader")}`
  reader; content hash `{str(facts.get("corpus_sha256"))[:16]}…`).
- License: {LICENSE}
- Split: by **{facts.get("split")}**, seed {facts.get("seed")}, {facts.get("val_fraction"):.0%} held out:
  {facts.get("train_windows")} training windows, {facts.get("val_windows")} validation windows.
  Held-out pieces: {", ".join(f"`{v}`" for v in val) or "(random windows, not pieces)"}.

## How well it predicts unseen music
Next-token prediction on the held-out pieces (every 32-token window's next token),
beside baselines trained on the same training pieces and vocabulary: an add-one
unigram and Witten-Bell-interpolated n-grams. Lower NLL is better; a model that only
memorised its training pieces would not beat the n-grams here.

{format_table(rows)}

{verdict}

Training curves: `{curves.name}` in `{curves.parent.name}/`.

## Reproduce
```
{facts.get("command")}
```
(`make model` runs exactly this.) Re-check the numbers above:
```
mididuet-train evaluate --model {model_path.as_posix()} --data ../shared/data/piano-midi/midis/Chopin
```
"""
    card.write_text(text)
