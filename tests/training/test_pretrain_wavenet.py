"""The new trainer options end to end on a small corpus: wavenet, transposition, pre-training."""

from pathlib import Path

import numpy as np
import pytest

from mididuet.daemon.predict import bundle
from mididuet.training.cli import main
from tests.helpers.midi_files import scale_piece

MIDIS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "piano-midi" / "midis"


@pytest.fixture(scope="module")
def corpora(tmp_path_factory) -> tuple[Path, Path]:
    """A 5-piece corpus, and a collection holding it under other names plus another composer."""
    root = tmp_path_factory.mktemp("corpora")
    corpus, collection = root / "corpus", root / "collection"
    corpus.mkdir()
    (collection / "Other").mkdir(parents=True)
    chopin = sorted((MIDIS / "Chopin").glob("*.mid"))[:4]
    other = sorted((MIDIS / "Bach").glob("*.mid"))[:1]
    if len(chopin) < 4 or not other:
        pytest.fail(f"the piano-midi corpus is missing at {MIDIS}; tests need ../shared/data")
    for path in chopin:
        (corpus / path.name).symlink_to(path.resolve())
    scale_piece(corpus / "written.mid")
    # Renamed copies: only the content hash can tell that a held-out piece is among them.
    for path in corpus.iterdir():
        (collection / f"copy-of-{path.name}").symlink_to(path.resolve())
    (collection / "Other" / other[0].name).symlink_to(other[0].resolve())
    return corpus, collection


@pytest.fixture(scope="module")
def pretrained(corpora, tmp_path_factory) -> Path:
    corpus, collection = corpora
    out = tmp_path_factory.mktemp("model") / "pre.onnx"
    code = main(["--data", str(corpus), "--out", str(out), "--arch", "wavenet", "--transpose", "1",
                 "--pretrain", str(collection), "--pretrain-epochs", "1", "--epochs", "1", "--min-count", "3",
                 "--val-fraction", "0.4", "--card", str(out.with_suffix(".md"))])
    assert code == 0
    return out


def test_pretrain_then_finetune_exports_a_bundle_with_its_facts(pretrained):
    runner = bundle.load_bundle(pretrained)
    facts = runner.info.training
    assert facts["arch"] == "wavenet" and facts["transpose"] == 1
    assert facts["pretrain_epochs_run"] == 1 and facts["epochs_run"] == 1
    # 6 files in the collection; the 2 held-out pieces are there under other names.
    assert facts["pretrain_excluded"] == len(facts["val_pieces"]) == 2
    assert facts["pretrain_pieces"] == 4
    assert facts["export_check"]["max_abs_diff"] <= 1e-4
    assert facts["latency_us"]["p99"] > 0
    probs = runner.query(np.zeros(32, dtype=np.int32))
    assert abs(float(probs.sum()) - 1) < 1e-4
    history = pretrained.parent / "pre-training"
    assert (history / "pretrain-history.csv").read_text().startswith("epoch")
    card = pretrained.with_suffix(".md").read_text()
    assert "wavenet + transpose ±1 + pretrain" in card and "Pre-training: 1 epochs" in card


def test_evaluate_reproduces_the_recorded_metrics(pretrained, corpora, capsys):
    assert main(["evaluate", "--model", str(pretrained), "--data", str(corpora[0])]) == 0
    table = capsys.readouterr().out
    recorded = bundle.load_bundle(pretrained).info.training["metrics"]["model"]
    assert f"| model | {recorded['nll']:.4f} |" in table


def test_compare_and_decoding_tables(pretrained, corpora, capsys):
    assert main(["compare", "--recorded-latency", str(pretrained)]) == 0
    table = capsys.readouterr().out
    assert "| wavenet + transpose ±1 + pretrain" in table and "| 2-gram (baseline) |" in table
    assert main(["decoding", "--model", str(pretrained), "--data", str(corpora[0]), "--tokens", "200",
                 "--seeds", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| pre.onnx")]
    from mididuet.training.decoding import DECODINGS

    assert len(rows) == len(DECODINGS) and any("greedy" in r for r in rows)
    assert sum("(daemon default)" in r for r in rows) == 1


def test_wavenet_export_computes_the_last_position_of_the_trained_network():
    from mididuet.training.model import build_network

    net = build_network("wavenet", 50)
    # Random but not trivial weights: perturb the freshly initialised ones.
    rng = np.random.default_rng(0)
    net.fit.set_weights([w + rng.normal(0, 0.1, w.shape).astype(w.dtype) for w in net.fit.get_weights()])
    x = rng.integers(0, 50, size=(64, 32)).astype(np.int32)
    every = net.fit.predict(x, verbose=0)
    assert every.shape == (64, 32, 50)
    last = net.export().predict(x, verbose=0)
    assert np.max(np.abs(every[:, -1, :] - last)) < 1e-5
    # Causal: changing the last token changes no earlier position's prediction.
    y = x.copy()
    y[:, -1] = (y[:, -1] + 1) % 50
    assert np.allclose(net.fit.predict(y, verbose=0)[:, :-1], every[:, :-1], atol=1e-6)
    # And the receptive field is the whole window: the first token reaches the last position.
    z = x.copy()
    z[:, 0] = (z[:, 0] + 1) % 50
    assert not np.allclose(net.export().predict(z, verbose=0), last, atol=1e-7)


def test_unknown_arch_is_refused_with_exit_code_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["--out", str(tmp_path / "x.onnx"), "--arch", "transformer"])
    assert exc.value.code == 2
    assert "invalid choice: 'transformer'" in capsys.readouterr().err


@pytest.mark.parametrize("flags", [["--arch", "wavenet"], ["--pretrain", "."], ["--transpose", "2"]])
def test_new_options_refuse_the_random_window_split(tmp_path, capsys, corpora, flags):
    code = main(["--data", str(corpora[0]), "--out", str(tmp_path / "x.onnx"), "--split", "windows", *flags])
    assert code == 2
    assert "split pieces" in capsys.readouterr().err



def test_a_phase_that_only_makes_it_worse_keeps_the_weights_it_started_from(small_corpus, tmp_path):
    """After pre-training, the weights it ended with compete with every fine-tuning epoch on
    the held-out loss the heads count in (``val_total``). A learning rate far too high makes
    the epoch worse, so the phase ends with the weights it started from, exactly."""
    from mididuet.daemon.music.expression import DEFAULT
    from mididuet.training.corpus import read_corpus
    from mididuet.training.dataset import build_dataset, expressive_windows
    from mididuet.training.model import build_network
    from mididuet.training.train import TrainOptions, fit_phase

    ds = build_dataset(read_corpus(small_corpus).pieces, val_fraction=0.4, min_count=3, expressive=True)
    # The seed traces faster; the per-position (wavenet) path keeps its start in `pretrained`.
    net = build_network("seed", len(ds.vocabulary), DEFAULT)
    net.compile(0.9)
    start = [w.copy() for w in net.fit.get_weights()]
    x, y = expressive_windows(ds.fit_expression or [], net.per_position)
    opts = TrainOptions(data=small_corpus, out=tmp_path / "m.onnx", patience=2)
    history, kept = fit_phase(net, x, y, ds, opts, 1, tmp_path / "history.csv", keep_start=True)
    assert len(history.history["val_total"]) == 1
    assert kept == 0, history.history["val_total"]
    assert all(np.array_equal(a, b) for a, b in zip(start, net.fit.get_weights(), strict=True))


@pytest.mark.parametrize("expressive", [False, True], ids=["keras-validation", "held-out-callback"])
def test_averaged_weights_are_the_ones_scored_and_kept(small_corpus, tmp_path, expressive):
    """With ``average_weights`` each epoch is scored on the moving average of its steps'
    weights (a horizon of one epoch), whether Keras's validation scores it or the trainer's
    own held-out callback, and the epoch kept keeps that average: the held-out loss of the
    weights the phase ends with is the one early stopping saw, and they are not the weights
    plain training ends with from the same seed."""
    import keras

    from mididuet.daemon.music.expression import DEFAULT
    from mididuet.training.corpus import read_corpus
    from mididuet.training.dataset import build_dataset, expressive_windows
    from mididuet.training.model import build_network
    from mididuet.training.train import TrainOptions, first_input, fit_phase, held_out, held_out_logs, monitored

    ds = build_dataset(read_corpus(small_corpus).pieces, val_fraction=0.4, min_count=3, expressive=expressive)
    ended = {}
    for average in (False, True):
        keras.utils.set_random_seed(3)
        net = build_network("seed", len(ds.vocabulary), DEFAULT if expressive else None)
        x, y = expressive_windows(ds.fit_expression or [], False) if expressive else (ds.x_train, ds.y_train)
        opts = TrainOptions(data=small_corpus, out=tmp_path / "m.onnx", batch_size=64, average_weights=average)
        history, kept = fit_phase(net, x, y, ds, opts, 1, tmp_path / f"history-{average}.csv")
        steps = -(-len(first_input(x)) // opts.batch_size)
        assert steps >= 4 and net.fit.optimizer.use_ema is average
        if average:
            assert net.fit.optimizer.ema_momentum == pytest.approx(1 - 1 / steps)
        scored = history.history[monitored(net)][kept - 1]
        assert held_out_logs(net, held_out(net, ds))[monitored(net)] == pytest.approx(scored, abs=1e-4)
        ended[average] = net.fit.get_weights()
    assert not all(np.allclose(a, b) for a, b in zip(ended[False], ended[True], strict=True))


def test_an_averaged_phase_stopped_early_ends_with_the_weights_it_kept(small_corpus, tmp_path):
    """When early stopping ends an averaged phase before its last epoch, Keras writes the
    last step's weights back at the end of ``fit``; the weights kept must still win. As in
    fine-tuning after pre-training: a fresh optimizer, the starting weights competing. A
    learning rate far too high makes the first epoch worse, patience 1 stops there, and the
    phase ends with the weights it started from, exactly."""
    from mididuet.daemon.music.expression import DEFAULT
    from mididuet.training.corpus import read_corpus
    from mididuet.training.dataset import build_dataset, expressive_windows
    from mididuet.training.model import build_network
    from mididuet.training.train import TrainOptions, fit_phase

    ds = build_dataset(read_corpus(small_corpus).pieces, val_fraction=0.4, min_count=3, expressive=True)
    net = build_network("seed", len(ds.vocabulary), DEFAULT)
    net.compile(0.9)
    start = [w.copy() for w in net.fit.get_weights()]
    x, y = expressive_windows(ds.fit_expression or [], net.per_position)
    opts = TrainOptions(data=small_corpus, out=tmp_path / "m.onnx", batch_size=64, patience=1, average_weights=True)
    history, kept = fit_phase(net, x, y, ds, opts, 3, tmp_path / "history.csv", keep_start=True)
    assert len(history.history["val_total"]) == 1 and kept == 0, history.history["val_total"]
    assert all(np.array_equal(a, b) for a, b in zip(start, net.fit.get_weights(), strict=True))


def test_a_score_that_is_not_a_number_is_never_kept() -> None:
    import keras

    from mididuet.training.train import keep_best

    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    start = [w.copy() for w in model.get_weights()]
    keep = keep_best("val_total", patience=5, start=2.0)
    keep.set_model(model)
    keep.on_train_begin()
    model.set_weights([w + 1 for w in start])
    keep.on_epoch_end(0, {"val_total": float("nan")})
    keep.on_train_end()
    assert keep.best_epoch == 0 and all(np.array_equal(a, b) for a, b in zip(start, model.get_weights(), strict=True))
    never = keep_best("val_total", patience=5, start=float("nan"))
    never.set_model(model)
    never.on_train_begin()
    never.on_epoch_end(0, {"val_total": float("nan")})
    with pytest.raises(ValueError, match="never a number: training diverged"):
        never.on_train_end()
