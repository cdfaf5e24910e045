"""Small real expressive training runs: both archs gain the heads, tf2onnx exports them and
each is checked against Keras; evaluate and answers read the bundle back as they would the
shipped one (the JSON modes, the memory, a corpus treated as unseen)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import onnx
import pytest

from mididuet.daemon.music.expression import DEFAULT, FEATURES, HEADS
from mididuet.daemon.predict import bundle
from mididuet.training.answers import format_seeds
from mididuet.training.cli import main
from mididuet.training.loss_weights import HEAD_LOSS_WEIGHT, training_weights
from tests.training.conftest import MIDIS, linked


@pytest.fixture(scope="module", params=["seed", "wavenet"])
def expressive(request: pytest.FixtureRequest, small_corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("expressive") / f"{request.param}.onnx"
    code = main(["--data", str(small_corpus), "--out", str(out), "--epochs", "1", "--min-count", "3",
                 "--val-fraction", "0.4", "--arch", request.param, "--expressive", "--head-weight", "timing=1.5",
                 "--head-temperature", "length=1.25", "--head-smoothing", "length=0.1",
                 "--card", str(out.with_suffix(".md"))])
    assert code == 0
    return out


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> dict:
    capsys.readouterr()
    assert main(argv) == 0
    return json.loads(capsys.readouterr().out)


def test_both_archs_export_every_head_checked_against_keras(expressive: Path) -> None:
    runner = bundle.load_bundle(expressive)
    assert runner.info.format_version == 2 and runner.expressive
    assert runner.info.expression is not None and runner.info.expression.heads == HEADS
    assert runner.info.training["monitor"] == "val_total", "early stopping counts the heads in"
    assert runner.info.training["head_weights"] == training_weights({"timing": 1.5}, DEFAULT)
    assert runner.info.training["head_temperatures"] == {"length": 1.25}, "baked in before the export's check"
    assert runner.info.training["head_smoothing"] == {"length": 0.1}
    check = runner.info.training["export_check"]
    for head in HEADS:
        assert check[f"max_abs_diff_{head}"] <= 1e-4, head
    # Checked against Keras after the graph's rewrites: each Embedding's negative-index guard
    # went, the features' embeddings are one Gather, each head's softmax over every token went.
    trunk = len(DEFAULT.trunk_features)
    assert check["nodes_after"] <= check["nodes_before"] - 9 * (1 + trunk), check  # token + trunk features
    graph = onnx.load(str(expressive)).graph
    # The token's, the trunk features' (one for all), the loud and the known features' (one each).
    assert sum(node.op_type == "Gather" for node in graph.node) == 4
    assert runner.info.expression.version == 5 and runner.features == FEATURES
    assert [node.output[0] for node in graph.node if node.op_type == "Softmax"] == [bundle.OUTPUT_NAME]
    card = expressive.with_suffix(".md").read_text()
    for head in HEADS:
        assert f"| {head} |" in card, f"the card's heads table lacks {head}"
    assert "plus each head's at 0.5; in training timing 1.5, the others 0.5" in card
    assert "heads weighed timing 1.5" in card, "the configuration's name says so"
    assert "divided by its temperature (`--head-temperature`: length 1.25)" in card
    assert "toward its target's neighbours on the grid too (`--head-smoothing`: length 0.1)" in card
    assert "smoothed length 0.1" in card, "the configuration's name says so"
    assert "| head | NLL | best temperature | NLL at it | gain (nats) |" in card, "the heads' diagnosis"


def test_early_stopping_weighs_every_head_alike_whatever_training_did(expressive: Path) -> None:
    """The fixture trains the timing at 1.5; the held-out sum early stopping watches still
    counts it at 0.5, like every head, so a head weighed more cannot buy itself the epoch."""
    with (expressive.with_name(expressive.stem + "-training") / "history.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert rows
    for row in rows:
        heads = sum(float(row[f"val_{head}_nll"]) for head in HEADS)
        assert float(row["val_total"]) == pytest.approx(float(row["val_loss"]) + HEAD_LOSS_WEIGHT * heads)


def test_simplify_rewrites_a_bundle_and_keeps_what_it_plays(expressive: Path, tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    again = tmp_path / "again.onnx"
    assert main(["simplify", "--model", str(expressive), "--out", str(again)]) == 0
    nodes = bundle.load_bundle(expressive).info.training["export_check"]["nodes_after"]
    assert f"{int(nodes)} → {int(nodes)} nodes" in capsys.readouterr().out  # the export already ran the pass
    assert bundle.load_bundle(again).info.training == bundle.load_bundle(expressive).info.training


def test_a_prediction_gives_each_head_a_row_per_token(expressive: Path) -> None:
    """Exported in format 2's factored layout: each head's logits for the window and its
    per-token table, whose sum is the distribution Keras's conditioned head gives."""
    runner = bundle.load_bundle(expressive)
    encoding = runner.info.expression
    assert encoding is not None
    window = np.arange(runner.info.window, dtype=np.int32) % len(runner.vocabulary)
    prediction = runner.predict(window, None)
    assert prediction.probs.shape == (len(runner.vocabulary),)
    for head in HEADS:
        assert prediction.heads[head].shape == (encoding.size(head),)
        assert runner.tables[head].shape == (len(runner.vocabulary), encoding.size(head))
        row = prediction.head(head, 3)
        assert row.shape == (encoding.size(head),) and np.isclose(row.sum(), 1)


def test_evaluate_reproduces_the_heads_recorded_at_training(expressive: Path, small_corpus: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    report = _json(capsys, ["evaluate", "--model", str(expressive), "--data", str(small_corpus), "--json"])
    recorded = bundle.load_bundle(expressive).info.training["head_metrics"]
    for head in HEADS:
        assert report["windowed_heads"][head]["nll"] == pytest.approx(recorded[head]["nll"], abs=2e-3), head
        assert report["windowed_heads"][head]["ratio"] > 0
        # The temperature these pieces would choose can only score them as well or better.
        assert report["windowed_heads"][head]["tempered_nll"] <= report["windowed_heads"][head]["nll"] + 1e-6, head
    capsys.readouterr()
    assert main(["evaluate", "--model", str(expressive), "--data", str(small_corpus)]) == 0
    text = capsys.readouterr().out
    assert "| head | NLL | best temperature | NLL at it | gain (nats) |" in text
    assert all(f"| {head} | {report['windowed_heads'][head]['nll']:.4f} | " in text for head in HEADS)


def test_evaluate_json_streams_with_and_without_the_memory(expressive: Path, small_corpus: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    report = _json(capsys, ["evaluate", "--model", str(expressive), "--data", str(small_corpus),
                            "--memory", "0.5", "--json"])
    assert report["memory_weight"] == 0.5 and report["pieces"] == 2 and report["predictions"] > 100
    alone, remembered, *baselines = report["streamed"]["tokens"]
    assert (alone["name"], remembered["name"]) == ("model", "model + memory (weight 0.5)")
    assert [row["name"] for row in baselines][:3] == ["unigram", "2-gram", "3-gram"]
    assert remembered["targets"] == alone["targets"] == report["predictions"]
    # Music repeats itself: the memory of the piece so far lowers the held-out NLL.
    assert remembered["nll"] < alone["nll"]
    for head in HEADS:
        assert [row["name"] for row in report["streamed"][head]] == ["model", "model + memory"]


def test_unseen_scores_every_file_of_another_corpus(expressive: Path, small_corpus: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    others = linked(tmp_path / "schumann", sorted((MIDIS / "Schumann").glob("*.mid"))[:2])
    report = _json(capsys, ["evaluate", "--model", str(expressive), "--unseen", "--data", str(others),
                            "--train-data", str(small_corpus), "--json"])
    assert report["mode"].startswith("unseen") and report["pieces"] == 2
    assert report["windowed"] == {}  # no split to rebuild: only the streamed figures
    assert report["predictions"] > 100


def test_answers_compare_chopin_the_pulse_and_the_heads(expressive: Path, small_corpus: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    result = _json(capsys, ["answers", "--model", str(expressive), "--data", str(small_corpus), "--json"])
    assert result["phrases"] > 0 and result["expressive_bundle"] is True
    for column in ("chopin", "pulse", "expressive"):
        assert {"npvi", "velocity_sd", "articulation", "notes_per_onset", "two_sample_accuracy",
                "ioi_ratio_js", "trigram_reuse"} <= set(result[column])
    assert result["pulse"]["velocity_sd"] < 1, "the pulse rhythm plays one velocity"
    assert result["expressive"]["velocity_sd"] > result["pulse"]["velocity_sd"]


@pytest.mark.parametrize("expressive", ["wavenet"], indirect=True)  # the sweep is the same for any bundle
def test_answers_sweep_seeds_and_settings_on_the_training_pieces(expressive: Path, small_corpus: Path,
                                                                 tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Settings are chosen on the pieces the model trained on, so the held-out table is not
    tuned on what it reports; a run per seed and their mean."""
    held_out = set(bundle.load_bundle(expressive).info.training["val_pieces"])
    # The corpus as the answers see it: one piece the model trained on (each run below
    # answers every phrase twice per seed, pulse and expressive), beside the ones it held
    # out, which must not be played.
    trained = sorted(p for p in small_corpus.glob("*.mid") if p.name not in held_out)
    data = linked(tmp_path / "corpus", [trained[0], *(small_corpus / name for name in held_out)])
    argv = ["answers", "--model", str(expressive), "--data", str(data), "--pieces", "training",
            "--seeds", "2", "--rhythm-temperature", "0.5", "--no-legato"]
    results = _json(capsys, [*argv, "--json"])
    assert [r["settings"]["seed"] for r in results] == [1, 2]
    assert all(r["settings"]["rhythm_temperature"] == 0.5 and r["settings"]["legato"] is False for r in results)
    assert results[0]["pieces"] == 1 and results[0]["phrases"] > 0
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert table.split("\n\n")[0] == format_seeds(results).split("\n\n")[0], "the same rows as its JSON"
    assert table.count("\n| 1 |") == table.count("\n| 2 |") == table.count("| **mean** |") == 1
    assert "rhythm temperature 0.5" in table and "legato False" in table
    assert main(["answers", "--model", str(expressive), "--seeds", "2", "--card", "x.md"]) == 2
    assert "--card stores one run on the held-out pieces" in capsys.readouterr().err


def test_an_unconditioned_model_exports_in_the_factored_layout(small_corpus: Path, tmp_path: Path) -> None:
    """``--unconditioned`` heads have an all-zero table: the export still writes it, so the
    daemon reads every bundle one way."""
    out = tmp_path / "unconditioned.onnx"
    assert main(["--data", str(small_corpus), "--out", str(out), "--epochs", "1", "--min-count", "3",
                 "--val-fraction", "0.4", "--arch", "seed", "--expressive", "--unconditioned"]) == 0
    runner = bundle.load_bundle(out)
    for head in HEADS:
        assert not runner.tables[head].any(), head
