"""A small real training run: Keras trains, tf2onnx exports, onnxruntime must agree."""

import json
from pathlib import Path

import numpy as np
import pytest

from mididuet.daemon.predict import bundle
from mididuet.training.answers import training_pieces
from mididuet.training.cli import main
from mididuet.training.corpus import read_corpus
from mididuet.training.dataset import build_dataset
from mididuet.training.train import left_out


@pytest.fixture(scope="module")
def trained(small_corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("model") / "small.onnx"
    code = main(["--data", str(small_corpus), "--out", str(out), "--epochs", "2", "--min-count", "3",
                 "--val-fraction", "0.4", "--card", str(out.with_suffix(".md"))])
    assert code == 0
    return out


def test_training_exports_a_bundle_that_the_daemon_accepts(trained):
    runner = bundle.load_bundle(trained)
    facts = runner.info.training
    assert facts["split"] == "pieces" and len(facts["val_pieces"]) == 2
    assert facts["epochs_run"] <= 2 and facts["parameters"] > 0
    assert facts["export_check"]["max_abs_diff"] <= 1e-4
    assert facts["export_check"]["argmax_agreement"] >= 0.999
    assert set(facts["metrics"]) == {"model", "unigram", "2-gram", "3-gram", "4-gram"}
    assert (trained.parent / "small-training" / "history.csv").read_text().startswith("epoch")
    png = (trained.parent / "small-training" / "curves.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n"


def test_exported_model_reproduces_its_recorded_held_out_loss(trained, small_corpus):
    """The bundle, rebuilt split and all from its metadata, scores what training recorded."""
    runner = bundle.load_bundle(trained)
    ds = build_dataset(read_corpus(small_corpus).pieces, val_fraction=0.4, seed=42,
                       vocabulary=runner.vocabulary)
    probs = runner.query_batch(ds.x_val)
    assert np.allclose(probs.sum(axis=1), 1, atol=1e-4)
    nll = float(-np.mean(np.log(probs[np.arange(len(ds.y_val)), ds.y_val])))
    assert nll == pytest.approx(runner.info.training["metrics"]["model"]["nll"], rel=1e-4)


def test_evaluate_reproduces_the_card(trained, small_corpus, capsys):
    assert main(["evaluate", "--model", str(trained), "--data", str(small_corpus)]) == 0
    windowed = capsys.readouterr().out.split("As the daemon predicts")[0]  # the card written at training
    tables = [block for block in windowed.strip().split("\n\n") if block.startswith("|")]
    assert tables and tables[0].splitlines()[2].startswith("| model |")
    card = trained.with_suffix(".md").read_text()
    for table in tables:
        assert table in card, table


def test_window_split_trains_too(small_corpus, tmp_path):
    out = tmp_path / "w.onnx"
    assert main(["--data", str(small_corpus), "--out", str(out), "--epochs", "1", "--min-count", "3",
                 "--split", "windows"]) == 0
    assert json.loads(json.dumps(bundle.load_bundle(out).info.training))["split"] == "windows"


def test_a_development_run_never_sees_the_test_pieces(small_corpus, tmp_path, capsys):
    """Trained on a development split, a bundle records what it left out; its card says so,
    evaluate rebuilds the same split, and answers tunes on neither kind of held-out piece.
    The weights' seed varies while the split keeps the shipped model's (``--split-seed``)."""
    out = tmp_path / "dev.onnx"
    assert main(["--data", str(small_corpus), "--out", str(out), "--epochs", "1", "--min-count", "3",
                 "--val-fraction", "0.25", "--split", "development", "--seed", "7", "--split-seed", "42",
                 "--card", str(tmp_path / "dev.md")]) == 0
    runner = bundle.load_bundle(out)
    facts = runner.info.training
    corpus = read_corpus(small_corpus)
    test = build_dataset(corpus.pieces, val_fraction=0.25, min_count=3, seed=42)
    assert facts["split"] == "development" and facts["excluded_pieces"] == test.val_pieces
    assert facts["seed"] == 7 and facts["split_seed"] == 42
    assert set(facts["val_pieces"]).isdisjoint(test.val_pieces)
    card = (tmp_path / "dev.md").read_text()
    assert "Split: by **development**, seed 42" in card
    assert "the 1 pieces `--split pieces` holds out (the test set) were left out" in card
    capsys.readouterr()
    assert main(["evaluate", "--model", str(out), "--data", str(small_corpus)]) == 0
    assert "differ" not in capsys.readouterr().err, "evaluate rebuilt the split it was trained on"
    everything = {path.name for path in small_corpus.glob("*.mid")}
    assert set(training_pieces(runner, small_corpus)) == everything - {*facts["val_pieces"], *test.val_pieces}
    # Pre-training leaves out both kinds too (by content hash).
    dev = build_dataset(corpus.pieces, split="development", val_fraction=0.25, min_count=3, seed=42)
    unseen = {*dev.val_pieces, *test.val_pieces}
    assert left_out(corpus, dev) == {p.sha256 for p in corpus.pieces if p.name in unseen} and len(unseen) == 2


def test_cli_errors_exit_2_with_a_message(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "none"), "--out", str(tmp_path / "x.onnx")]) == 2
    assert "corpus directory not found" in capsys.readouterr().err
    (tmp_path / "text.onnx").write_text("not onnx")
    assert main(["evaluate", "--model", str(tmp_path / "text.onnx"), "--data", str(tmp_path)]) == 2
    assert "not a readable ONNX model" in capsys.readouterr().err


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit):
        main(["--help"])
    text = capsys.readouterr().out
    for flag in ("--data", "--out", "--epochs", "--batch-size", "--min-count", "--split", "--reader", "--seed"):
        assert flag in text
