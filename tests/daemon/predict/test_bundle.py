"""The bundle contract: good bundles load, every broken rule is refused with a clear message."""

import json

import numpy as np
import pytest
from onnx import TensorProto

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


def test_training_facts_are_exposed(tmp_path):
    path = make_bundle(tmp_path / "m.onnx", metadata={bundle.META_TRAINING: json.dumps({"epochs_run": 3})})
    assert bundle.load_bundle(path).info.training == {"epochs_run": 3}
