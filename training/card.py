"""The model card: what a bundle is, what it was trained on, and how well it predicts."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .dataset import recorded_split_seed
from .evaluate import Metrics, best_baseline, format_table
from .evaluate_heads import TEMPERATURE_TEXT, HeadMetrics, format_head_table, format_temperature_table
from .loss_weights import named_settings, stopping_weight, weighed_otherwise
from .quality import configuration_name, format_rows
from .quality import model_row as quality_row

ARCH_TEXT = {
    "seed": "the reference notebook's Conv1D \"WaveNet\" (Embedding 100 → Conv1D 64/128/256, "
            "dilations 1/2/4, causal, each followed by max-pooling → GlobalMaxPool → Dense 256 → softmax)",
    "wavenet": "a WaveNet: Embedding 64 → five gated residual blocks (tanh ⊙ sigmoid, kernel 2, causal, "
               "dilations 1/2/4/8/16: the receptive field is the whole 32-token window) with 1×1 residual "
               "and skip connections → ReLU → Dense 256 → softmax; trained to predict at every position, "
               "exported for the last one",
}

LICENSE = ("The training data is the Classical Piano MIDI collection of piano-midi.de by "
           "Bernd Krueger, published under Creative Commons BY-SA 3.0 Germany "
           "(https://creativecommons.org/licenses/by-sa/3.0/de/). This model is derived "
           "from it and carries that attribution.")


HEADS_TEXT = """Besides the next token, the model predicts how it is played: one head per attribute,
each a softmax over classes, conditioned on the token it describes (the daemon samples
the token first, then adds that token's row to each head's logits). All are relative to the
sequence's own recent past, so the daemon can measure them live:

- **delay**: the time from the previous token, ÷ the *pulse* (the low median of the last
  16 inter-onset intervals), on a grid of 1/4, 1/3, 1/2, 2/3, 3/4, 1, 4/3, 3/2, 2, 3, 4, 6
  and 8 pulses: sixteenths, triplets, dotted values and rests (on the reader's beat grid);
- **timing**: the rubato, how far the played IOI (the tempo map's seconds) strays from
  that grid value, from 0.8 to 1.25 × (7 classes);
- **length**: how long the token sounds (sustain pedal applied), ÷ the pulse, from 1/4
  to 16 pulses on a log grid;
- **velocity**: the loudest note against the median of the last 16 tokens', in steps
  from −30 to +30 (finer near 0);
- **voicing** (chords only): the octave of the lowest note, which of the chord's pitch
  classes is the bass, the spread from lowest to highest (six bands up to 34+
  semitones), and how many notes double a pitch class (0–3).

The trunk reads all eight classes of every window token with it, so it can continue the
player's rhythm and dynamics; the length it reads is the previous token's (or "held", if
that one still sounded when this one began), the only length known when the next token is
decided. From encoding version 3 it also reads, per token, how long the oldest token still
sounding at its onset has sounded (where the token falls in the pedal's span). From version
4 the velocity head has its own hidden layer, which also reads how loud the last 8 tokens
were against the level the next one is measured from (exact offsets, ±40); from version 5
the length head has one too, which reads the last 8 tokens' lengths as they stand when the
next token is decided: a token whose notes have stopped gives its length, one still
sounding how long it has sounded so far (under the pedal, how long this passage's pedal
spans last). The classes are in the bundle's `mididuet.expression` metadata;
`docs/architecture.md` explains the encoding and why."""

MEMORY_TEXT = """Each held-out piece streamed from its start through a fresh session memory, as a player
playing it to mididuet would: the next token (and each remembered head's class) predicted by
the model alone, and mixed with the memory as the daemon mixes it."""


def _development(facts: dict[str, Any]) -> str:
    """What a development split left out: the test pieces, which no figure here has seen."""
    excluded = facts.get("excluded_pieces")
    if facts.get("split") != "development" or excluded is None:
        return ""
    return (f"\n  A development split: the {len(excluded)} pieces `--split pieces` holds out (the test set) were "
            "left out entirely, so every figure below is on development pieces, for choosing settings.")


def graph_nodes(model_path: Path) -> int:
    """How many nodes the bundle's ONNX graph has."""
    import onnx

    return len(onnx.load(str(model_path)).graph.node)


def _token_aware_text(head_rows: Sequence[HeadMetrics]) -> str:
    rows = [r for r in head_rows if r.token_ratio is not None]
    if not rows:
        return ""
    worst = max(rows, key=lambda r: r.token_ratio or 0.0)
    return (" Those baselines know nothing of the token the head is told; the token-aware one does (the "
            "class's counts after that very token, backed off to tokens of as many pitch classes, then to the best "
            "n-gram): against the best of all, the "
            f"highest ratio is {worst.token_ratio:.3f} ({worst.head}).")


def write_card(card: Path, model_path: Path, facts: dict[str, Any], rows: Sequence[Metrics],
               head_rows: Sequence[HeadMetrics] = ()) -> None:
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
    arch = str(facts.get("arch", "seed"))
    data_steps = ""
    if facts.get("transpose"):
        data_steps += (f"\n- Augmentation: every training piece also transposed by −{facts['transpose']}…"
                       f"+{facts['transpose']} semitones (chords re-derived, notes leaving 21–108 dropped); "
                       "validation pieces never transposed; vocabulary from the untransposed pieces.")
    if facts.get("pretrain"):
        data_steps += (f"\n- Pre-training: {facts.get('pretrain_epochs_run')} epochs on "
                       f"`{facts['pretrain']}` ({facts.get('pretrain_pieces')} pieces, all composers, the "
                       f"{facts.get('pretrain_excluded')} held-out pieces excluded by content hash; tokens "
                       f"outside this vocabulary dropped; {facts.get('pretrain_seconds')} s), then fine-tuned "
                       f"on the corpus at learning rate {facts.get('finetune_lr')}.")
    finetune = " (fine-tuning)" if facts.get("pretrain") else ""
    kept = (f"the best validation loss at epoch {facts.get('best_epoch')} kept" if facts.get("best_epoch") else
            "no fine-tuning epoch beat the pre-trained weights, which were kept")
    monitored = ""
    if facts.get("monitor") == "val_total":
        usual, other = stopping_weight(facts), weighed_otherwise(facts)
        monitored = (f" on the token's loss plus each head's at {usual:g}; in training {other}, the others "
                     f"{usual:g}" if other else " on the token's loss plus the heads', weighed as in training")
    averaged = ("; each epoch scored and kept as its weights' moving average over about an epoch of steps"
                if facts.get("average_weights") else "")
    smoothing = facts.get("head_smoothing") or {}
    smoothed = (f"; each named head trained toward its target's neighbours on the grid too "
                f"(`--head-smoothing`: {named_settings(smoothing)})" if smoothing else "")
    temperatures = facts.get("head_temperatures") or {}
    tempered = (f"; then each named head's logits divided by its temperature (`--head-temperature`: "
                f"{named_settings(temperatures)})" if temperatures else "")
    graph_rewrites = (",\n  with the features' embeddings in one Gather, and with each head's softmax over every "
                      "token\n  factored into its two terms") if head_rows else ""
    if arch == "wavenet":
        graph_rewrites += (";\n  and the wavenet's layers in fewer kernels where their shapes allow: input "
                           "projections, skips,\n  residuals and heads, in `training/graph_layers.py`")
    latency = facts.get("latency_us") or {}
    row = format_rows([quality_row(facts, latency.get("p99"))], with_commands=False)
    heads_section = ""
    if head_rows:
        worst = max(head_rows, key=lambda r: r.ratio)
        heads_section = (f"\n## How it plays: the expressive heads\n{HEADS_TEXT}\n\nEach head's held-out NLL, for "
                         f"the token that really came, beside baselines on the same classes (the attribute's "
                         f"unigram and n-grams over its own history in the piece):\n\n"
                         f"{format_head_table(head_rows)}\n\nEvery head's NLL is at most {worst.ratio:.3f} × its "
                         f"best baseline's ({worst.head}).{_token_aware_text(head_rows)}\n")
        if all(r.temperature is not None for r in head_rows):
            heads_section += f"\n{TEMPERATURE_TEXT}\n\n{format_temperature_table(head_rows)}\n"
    if facts.get("streamed"):
        from .streaming import Streamed, format_streamed

        streamed = {k: [Streamed(**r) for r in v] for k, v in facts["streamed"].items()}
        heads_section += (f"\n## As the daemon predicts: with the session memory\n{MEMORY_TEXT} Memory weight "
                          f"{facts.get('memory_weight')}:\n\n{format_streamed(streamed)}\n")
    if facts.get("answers"):
        from .answers import format_answers

        heads_section += (f"\n## Its answers beside Chopin's\nDuet answers to the held-out pieces' phrases, "
                          f"measured beside what Chopin wrote next (`mididuet-train answers`):\n\n"
                          f"{format_answers(facts['answers'])}\n")
    text = f"""# Model card: `{model_path.name}`

A next-token model for mididuet: given the last 32 note/chord tokens, it gives the
probability of each token in its vocabulary coming next. The daemon samples its
answers from these probabilities.

## Configuration: {configuration_name(facts)}
{row}

(The row of `docs/model-quality.md` for this configuration; p99 is one (1, 32) prediction
through onnxruntime, 1 thread, measured when this card was written, on a shared 2-core machine.)

- Architecture: `{arch}` — {ARCH_TEXT.get(arch, arch)}; {facts.get("parameters"):,} parameters.
- Vocabulary: {facts.get("vocabulary_size")} tokens — those seen at least
  {facts.get("min_count")} times in the training pieces.
- Training: Adam, batch {facts.get("batch_size")}, {facts.get("epochs_run")} epochs run{finetune}, {kept}
  (early stopping{monitored}){averaged}{smoothed}{tempered}, seed {facts.get("seed")},
  {facts.get("train_seconds")} s on a 2-core CPU (all stages).{data_steps}
- Export: tf2onnx, checked against Keras on {int(check.get("windows", 0))} validation windows: max
  |Δprob| {check.get("max_abs_diff", float("nan")):.1e}, same argmax on {check.get("argmax_agreement", 0):.2%}.
  The graph has {graph_nodes(model_path)} ONNX nodes: without the negative-index guard tf2onnx writes
  before each Embedding's Gather{graph_rewrites} (`training/graph.py`; `mididuet-train simplify`
  rewrites an older bundle).

## Data
- Corpus: `{facts.get("corpus")}` ({facts.get("pieces")} pieces, read with the `{facts.get("reader")}`
  reader; content hash `{str(facts.get("corpus_sha256"))[:16]}…`).
- License: {LICENSE}
- Split: by **{facts.get("split")}**, seed {recorded_split_seed(facts)}, {facts.get("val_fraction"):.0%} held out:
  {facts.get("train_windows")} training windows, {facts.get("val_windows")} validation windows.
  Held-out pieces: {", ".join(f"`{v}`" for v in val) or "(random windows, not pieces)"}.{_development(facts)}

## How well it predicts unseen music
Next-token prediction on the held-out pieces (every 32-token window's next token),
beside baselines trained on the same training pieces and vocabulary: an add-one
unigram and Witten-Bell-interpolated n-grams. Lower NLL is better; a model that only
memorised its training pieces would not beat the n-grams here.

{format_table(rows)}

{verdict}
{heads_section}
Training curves: `{curves.name}` in `{curves.parent.name}/`.

## Reproduce
```
{facts.get("command")}
```
(`make model` runs this, then the `answers` line below with `--card`.) Re-check the numbers above:
```
mididuet-train evaluate --model {model_path.as_posix()} --data ../shared/data/piano-midi/midis/Chopin
mididuet-train answers --model {model_path.as_posix()} --data ../shared/data/piano-midi/midis/Chopin
```
The seed's configuration (the notebook's network, no augmentation, no pre-training) is
the trainer's default: `mididuet-train --data ../shared/data/piano-midi/midis/Chopin --out seed.onnx`.
"""
    card.write_text(text)
