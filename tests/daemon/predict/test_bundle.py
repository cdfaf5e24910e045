"""The bundle contract: good bundles load, every broken rule is refused with a clear message."""

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, numpy_helper

from mididuet.daemon.music.expression import FEATURES, Encoding
from mididuet.daemon.predict import bundle
from mididuet.daemon.predict.bundle import BundleError
from tests.helpers.bundles import DEFAULT_VOCABULARY, make_bundle


def test_a_good_bundle_loads_and_predicts(tmp_path):
    runner = bundle.load_bundle(make_bundle(tmp_path / "m.onnx"))
    assert runner.vocabulary == tuple(DEFAULT_VOCABULARY)
    probs = runner.query(np.arange(32, dtype=np.int32) % runner.info.size)
    assert probs.shape == (len(DEFAULT_VOCABULARY),) and probs.sum() == pytest.approx(1, abs=1e-5)


@pytest.mark.parametrize("key", bundle.REQUIRED_METADATA)
def test_missing_metadata_is_named(tmp_path, key):
    with pytest.raises(BundleError, match=key.replace(".", r"\.")):
        bundle.load_bundle(make_bundle(tmp_path / "m.onnx", drop_metadata=(key,)))


def test_output_width_must_match_the_vocabulary(tmp_path):
    path = make_bundle(tmp_path / "m.onnx", output_width=len(DEFAULT_VOCABULARY) + 2)
    with pytest.raises(BundleError, match=r"width 20 but the vocabulary has 18 tokens"):
        bundle.load_bundle(path)


def test_window_other_than_32_is_refused(tmp_path):
    path = make_bundle(tmp_path / "m.onnx", window=16, metadata={bundle.META_WINDOW: "16"})
    with pytest.raises(BundleError, match="window is 16 tokens"):
        bundle.load_bundle(path)


def test_other_format_version_is_refused(tmp_path):
    path = make_bundle(tmp_path / "m.onnx", metadata={bundle.META_FORMAT: "99"})
    with pytest.raises(BundleError, match="format version 99"):
        bundle.load_bundle(path)


def test_int64_input_is_refused(tmp_path):
    path = make_bundle(tmp_path / "m.onnx", input_type=TensorProto.INT64)
    with pytest.raises(BundleError, match="must be int32"):
        bundle.load_bundle(path)


@pytest.mark.parametrize("vocab_json", ["not json", "[]", '["C4", "C4"]', '{"a": 1}'])
def test_bad_vocabulary_metadata_is_refused(tmp_path, vocab_json):
    path = make_bundle(tmp_path / "m.onnx", metadata={bundle.META_VOCABULARY: vocab_json})
    with pytest.raises(BundleError, match="vocabulary"):
        bundle.load_bundle(path)


def test_damaged_and_missing_files_are_refused(tmp_path):
    good = make_bundle(tmp_path / "m.onnx")
    damaged = tmp_path / "damaged.onnx"
    damaged.write_bytes(good.read_bytes()[: len(good.read_bytes()) // 2])
    with pytest.raises(BundleError, match="not a readable ONNX model"):
        bundle.load_bundle(damaged)
    (tmp_path / "text.onnx").write_text("hello")
    with pytest.raises(BundleError, match="not a readable ONNX model"):
        bundle.load_bundle(tmp_path / "text.onnx")
    with pytest.raises(BundleError, match="not found"):
        bundle.load_bundle(tmp_path / "absent.onnx")


def test_token_ids_are_validated_before_inference(tmp_path):
    runner = bundle.load_bundle(make_bundle(tmp_path / "m.onnx"))
    window = np.zeros(32, dtype=np.int32)
    window[5] = -1  # onnxruntime would silently wrap this to the last token
    with pytest.raises(ValueError, match="token ids must be in range"):
        runner.query(window)
    window[5] = runner.info.size
    with pytest.raises(ValueError, match="token ids must be in range"):
        runner.query(window)
    with pytest.raises(ValueError, match="32 token ids"):
        runner.query(np.zeros(31, dtype=np.int32))
    for wrong in (-1, -2**31, runner.info.size, 2**32):  # int32 is checked unsigned, others both ways
        for dtype in (np.int32, np.int64):
            window = np.zeros(32, dtype=dtype)
            if np.iinfo(dtype).min <= wrong <= np.iinfo(dtype).max:
                window[3] = wrong
                with pytest.raises(ValueError, match="token ids must be in range"):
                    runner.query(window)
                with pytest.raises(ValueError, match="token ids must be in range"):
                    runner.query_batch(window[None])
    runner.query(np.full(32, runner.info.size - 1, dtype=np.int32))


def test_training_facts_are_exposed(tmp_path):
    path = make_bundle(tmp_path / "m.onnx", metadata={bundle.META_TRAINING: json.dumps({"epochs_run": 3})})
    assert bundle.load_bundle(path).info.training == {"epochs_run": 3}


# --- format 2: the expressive heads ------------------------------------------------------------
def test_a_format_2_bundle_predicts_the_token_and_every_head(tmp_path):
    runner = bundle.load_bundle(make_bundle(tmp_path / "m.onnx", expressive=True))
    encoding = runner.info.expression
    assert runner.info.format_version == 2 and runner.expressive and encoding is not None
    window = np.arange(32, dtype=np.int32) % runner.info.size
    features = np.ones((32, len(FEATURES)), dtype=np.int32)
    prediction = runner.predict(window, features)
    assert prediction.probs.shape == (runner.info.size,)
    assert set(prediction.heads) == set(encoding.heads)
    for name, logits in prediction.heads.items():
        assert logits.shape == (encoding.size(name),)
        assert runner.tables[name].shape == (runner.info.size, encoding.size(name))
        rows = [prediction.head(name, token) for token in range(runner.info.size)]
        assert all(np.isclose(row.sum(), 1) and row.min() >= 0 for row in rows)
        # The daemon's row is the offline [batch, V, C] one.
        batch = runner.predict_batch(window[None], features[None])[name][0]
        np.testing.assert_allclose(np.stack(rows), batch, atol=1e-6)
    # The features reach the model: other classes, other probabilities.
    other = runner.predict(window, np.full((32, len(FEATURES)), 2, dtype=np.int32))
    assert not np.allclose(other.probs, prediction.probs)
    assert np.allclose(runner.query(window), runner.predict(window, None).probs)


@pytest.mark.parametrize("expressive", [False, True])
def test_each_prediction_reads_its_own_window_and_keeps_its_numbers(tmp_path, expressive):
    """The daemon's one-window call runs on inputs and outputs bound once: it must read
    the window and features written for it, and a prediction kept must not change when
    the next is made."""
    runner = bundle.load_bundle(make_bundle(tmp_path / "m.onnx", expressive=expressive))
    rng = np.random.default_rng(5)
    windows = rng.integers(0, runner.info.size, (6, 32)).astype(np.int32)
    highs = [runner.info.expression.feature_size(f) for f in runner.features] if expressive else []
    features = (rng.random((6, 32, len(highs))) * highs).astype(np.int32) if expressive else None
    kept = [runner.predict(windows[k], None if features is None else features[k]) for k in range(6)]
    batch = runner.predict_batch(windows, features)
    for k, prediction in enumerate(kept):
        np.testing.assert_allclose(prediction.probs, batch[bundle.OUTPUT_NAME][k], atol=1e-6)
        for name in prediction.heads:
            np.testing.assert_allclose(prediction.head(name, 3), batch[name][k, 3], atol=1e-6)
    assert len({prediction.probs.tobytes() for prediction in kept}) == 6


def test_a_format_1_bundle_has_no_heads(tmp_path):
    runner = bundle.load_bundle(make_bundle(tmp_path / "m.onnx"))
    assert runner.info.format_version == 1 and not runner.expressive and runner.info.expression is None
    assert runner.predict(np.zeros(32, dtype=np.int32), None).heads == {}


def _expression(**changes):
    meta = Encoding().as_metadata()
    for key, value in changes.items():
        if key in meta["classes"]:
            meta["classes"][key] = value
        else:
            meta[key] = value
    return json.dumps(meta)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"metadata": {bundle.META_FORMAT: "2"}}, "a format-2 bundle must declare its heads in mididuet.expression"),
    ({"expressive": True, "metadata": {bundle.META_EXPRESSION: "{"}}, "mididuet.expression is not valid JSON"),
    ({"expressive": True, "metadata": {bundle.META_EXPRESSION: _expression(version=7)}},
     "expression encoding version 7, this mididuet reads 2"),
    ({"expressive": True, "metadata": {bundle.META_EXPRESSION: _expression(features=["delay"])}},
     "features must be"),
    ({"expressive": True, "metadata": {bundle.META_EXPRESSION: _expression(delay=[])}},
     "classes.delay must be a non-empty list of numbers"),
    ({"expressive": True, "metadata": {bundle.META_EXPRESSION: _expression(length=[0.5, -1])}},
     "delay, timing and length classes must be positive ratios"),
    ({"expressive": True, "metadata": {bundle.META_EXPRESSION: _expression(bass=[0, 1.5, 2, 3, 4, 5])}},
     "must be whole numbers"),
    ({"expressive": True, "metadata": {bundle.META_EXPRESSION: _expression(doubled=[-1, 0, 1, 2])}},
     "bass, spread and doubled classes must be 0 or more, octaves -1..9"),
    ({"expressive": True, "metadata": {bundle.META_EXPRESSION: _expression(octave=[1, 2, 3, 4, 5, 12])}},
     "bass, spread and doubled classes must be 0 or more, octaves -1..9"),
    ({"expressive": True, "heads": ("delay",)}, "declares heads ['timing', 'length', 'velocity'"),
    ({"expressive": True, "head_classes": {"velocity": 5}}, "head 'velocity' must have shape [batch, 13]"),
    ({"expressive": True, "unfactored": True},
     "head 'delay' has the [batch, V, C] layout of an earlier format-2 export; rewrite it with: "
     "mididuet-train simplify --model"),
    ({"metadata": {bundle.META_EXPRESSION: _expression()}}, "mididuet.expression is only allowed in format 2"),
])
def test_an_inconsistent_format_2_bundle_is_refused_naming_the_rule(tmp_path, kwargs, message):
    path = make_bundle(tmp_path / "m.onnx", **kwargs)
    with pytest.raises(BundleError) as caught:
        bundle.load_bundle(path)
    assert message in str(caught.value)


def test_a_format_2_bundle_without_its_features_input_is_refused(tmp_path):
    path = make_bundle(tmp_path / "m.onnx", metadata={bundle.META_FORMAT: "2",
                                                       bundle.META_EXPRESSION: _expression()})
    with pytest.raises(BundleError, match=r"expected inputs named \['tokens', 'features'\] \(format 2\)"):
        bundle.load_bundle(path)


def test_a_head_table_that_is_not_finite_is_refused(tmp_path):
    path = make_bundle(tmp_path / "m.onnx", expressive=True)
    model = onnx.load(str(path))
    table = next(i for i in model.graph.initializer if i.name == "spread" + bundle.TABLE_SUFFIX)
    values = numpy_helper.to_array(table).copy()
    values[3, 1] = np.nan
    table.CopyFrom(numpy_helper.from_array(values, table.name))
    onnx.save(model, str(path))
    with pytest.raises(BundleError, match=r"output 'spread.by_token' holds values that are not finite"):
        bundle.load_bundle(path)


def _rewritten(path, change):
    model = onnx.load(str(path))
    change(model.graph)
    onnx.save(model, str(path))
    return path


def _drop_table(graph):
    kept = [o for o in graph.output if o.name != "octave" + bundle.TABLE_SUFFIX]
    del graph.output[:]
    graph.output.extend(kept)


def _wider_table(graph):
    table = next(i for i in graph.initializer if i.name == "bass" + bundle.TABLE_SUFFIX)
    values = numpy_helper.to_array(table)
    table.CopyFrom(numpy_helper.from_array(np.concatenate([values, values[:1]]), table.name))
    output = next(o for o in graph.output if o.name == table.name)
    output.type.tensor_type.shape.dim[0].dim_value = len(values) + 1


def _huge_logits(graph):
    """Each term finite, their sum not: float32's largest value in the table, and context
    weights that make some logits as large."""
    for name, scale in (("delay" + bundle.TABLE_SUFFIX, None), ("delay_context", 1e36)):
        init = next(i for i in graph.initializer if i.name == name)
        values = numpy_helper.to_array(init).copy()
        values = np.full_like(values, np.finfo(np.float32).max) if scale is None else np.abs(values) * scale
        init.CopyFrom(numpy_helper.from_array(values.astype(np.float32), init.name))
    # With every feature unknown the window's pooled embedding points away from these weights:
    # turn the embedding table over so the context comes out large and positive.
    emb = next(i for i in graph.initializer if i.name == "emb")
    emb.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(emb), "emb"))
    for init in graph.initializer:
        if init.name.startswith("feature_"):
            init.CopyFrom(numpy_helper.from_array(-numpy_helper.to_array(init), init.name))


@pytest.mark.parametrize(("change", "message"), [
    (_drop_table, "head 'octave' has no output 'octave.by_token'"),
    (_wider_table, "output 'bass.by_token' must have shape [18, 6]"),
    (_huge_logits, "head 'delay' plus its table overflows"),
])
def test_a_head_table_that_breaks_the_contract_is_refused(tmp_path, change, message):
    path = _rewritten(make_bundle(tmp_path / "m.onnx", expressive=True), change)
    with pytest.raises(BundleError) as caught:
        bundle.load_bundle(path)
    assert message in str(caught.value)


def test_offline_features_out_of_range_are_refused(tmp_path):
    runner = bundle.load_bundle(make_bundle(tmp_path / "m.onnx", expressive=True))
    windows = np.zeros((2, 32), np.int32)
    features = np.zeros((2, 32, len(FEATURES)), np.int32)
    runner.predict_batch(windows, features)
    features[1, 5, 2] = runner.info.expression.feature_size(FEATURES[2])
    with pytest.raises(ValueError, match="each column below its feature's size"):
        runner.predict_batch(windows, features)
    wide = np.zeros((2, 32, len(FEATURES)), np.int64)
    wide[0, 3, 0] = 2**32  # 0 once cast to int32: checked before the cast
    with pytest.raises(ValueError, match="each column below its feature's size"):
        runner.predict_batch(windows, wide)
