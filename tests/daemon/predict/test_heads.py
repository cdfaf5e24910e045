"""Every head's class drawn in one pass is what drawing head by head gives."""

import numpy as np
import pytest

from mididuet.daemon.engine.engine import RHYTHM_HEADS
from mididuet.daemon.music.expression import DEFAULT
from mididuet.daemon.predict.bundle import Prediction, by_token, load_bundle, softmax
from mididuet.daemon.predict.heads import HeadSampler
from mididuet.daemon.predict.memory import REMEMBERED_HEADS, NGramMemory
from mididuet.daemon.predict.sampler import Sampler
from tests.helpers.heads import one_by_one

VOCABULARY = 20


def random_prediction(rng: np.random.Generator, sharpness: float) -> Prediction:
    heads = {name: (rng.normal(size=DEFAULT.size(name)) * sharpness).astype(np.float32) for name in DEFAULT.heads}
    tables = {name: (rng.normal(size=(VOCABULARY, DEFAULT.size(name))) * sharpness).astype(np.float32)
              for name in DEFAULT.heads}
    return Prediction(np.full(VOCABULARY, 1 / VOCABULARY, np.float32), heads, tables)


def memories(rng: np.random.Generator) -> dict[str, NGramMemory]:
    kept = {name: NGramMemory(DEFAULT.size(name)) for name in DEFAULT.heads if name in REMEMBERED_HEADS}
    for memory in kept.values():
        for _ in range(int(rng.integers(0, 30))):
            memory.observe(int(rng.integers(0, memory.size)))
    return kept


@pytest.mark.parametrize("method", ["top-p", "greedy"])
@pytest.mark.parametrize(("weight", "temperature", "sharpness"), [
    (0.0, 1.0, 1.0), (0.9, 0.85, 1.0), (0.6, 0.4, 4.0), (0.9, 1.3, 0.3), (1.0, 0.85, 30.0),
    (0.0, 5.0, 30.0),  # flattened, no memory: classes below the floor tempering keeps
])
def test_one_pass_draws_what_head_by_head_draws(method, weight, temperature, sharpness):
    rng = np.random.default_rng(11)
    for trial in range(200):
        prediction = random_prediction(rng, sharpness)
        token_id = int(rng.integers(0, VOCABULARY))
        kept = memories(rng)
        sampler = HeadSampler(DEFAULT.heads, prediction.tables, RHYTHM_HEADS)
        a, b = Sampler(method, seed=trial), Sampler(method, seed=trial)
        assert sampler.sample(prediction, token_id, a, kept, weight, temperature) == \
            one_by_one(prediction, token_id, b, kept, weight, temperature)
        assert a.rng.random() == b.rng.random(), "one draw per head, as many as head by head"


def test_the_distributions_are_each_heads_softmax():
    rng = np.random.default_rng(2)
    prediction = random_prediction(rng, 5.0)
    sampler = HeadSampler(DEFAULT.heads, prediction.tables, RHYTHM_HEADS)
    p = sampler.distributions(prediction, 7)
    for name in DEFAULT.heads:
        expected = softmax(prediction.heads[name] + prediction.tables[name][7])
        np.testing.assert_allclose(p[sampler.slices[name]], expected, rtol=1e-12)
    assert len(p) == sum(DEFAULT.size(name) for name in DEFAULT.heads)


def test_one_sampler_follows_its_memories_as_they_count_and_the_settings_change():
    """As the engine uses it: one sampler for a session, its memories counting a symbol
    between draws, the memory weight and the rhythm temperature turned now and then."""
    rng = np.random.default_rng(5)
    prediction = random_prediction(rng, 1.0)
    sampler = HeadSampler(DEFAULT.heads, prediction.tables, RHYTHM_HEADS)
    kept = {name: NGramMemory(DEFAULT.size(name)) for name in DEFAULT.heads if name in REMEMBERED_HEADS}
    a, b = Sampler(seed=3), Sampler(seed=3)
    weight, temperature = 0.9, 0.7
    for draw in range(300):
        if draw % 50 == 49:
            weight, temperature = float(rng.choice([0.0, 0.5, 0.9])), float(rng.choice([0.5, 1.0, 1.4]))
        given = {name: kept[name] for name in kept if draw % 7 or name != "velocity"}  # a head left out now and then
        token_id = int(rng.integers(0, VOCABULARY))
        assert sampler.sample(prediction, token_id, a, given, weight, temperature) == \
            one_by_one(prediction, token_id, b, given, weight, temperature), draw
        for memory in kept.values():
            memory.observe(int(rng.integers(0, memory.size)))
        if draw % 3:  # as the engine does once a token is counted; the draw must not depend on it
            sampler.follow(given, weight)


def test_a_bundles_prediction_lays_the_heads_end_to_end_and_the_sampler_reads_them_so():
    """The shipped bundle's heads are bound to one array: a prediction's heads are parts of
    its ``logits``, and the sampler's distributions from them are those it makes from the
    heads one by one (a prediction without ``logits``, or with its heads in another order)."""
    model = load_bundle()
    rng = np.random.default_rng(4)
    encoding = model.info.expression
    highs = [encoding.feature_size(name) for name in model.features]
    sampler = HeadSampler(model.heads, model.tables, RHYTHM_HEADS)
    for _ in range(20):
        window = rng.integers(0, model.info.size, model.info.window).astype(np.int32)
        features = np.stack([rng.integers(0, high, model.info.window) for high in highs], -1).astype(np.int32)
        prediction = model.predict(window, features)
        assert prediction.logits is not None
        assert all(prediction.heads[name].base is prediction.logits for name in model.heads)
        # What the binding wrote is each head's output: as a plain onnxruntime run gives it.
        plain = model.predict_batch(window[None], features[None])
        for name in model.heads:
            np.testing.assert_allclose(by_token(prediction.heads[name][None], model.tables[name]), plain[name],
                                       atol=1e-6, err_msg=name)
        token_id = int(rng.integers(0, model.info.size))
        apart = Prediction(prediction.probs, {name: prediction.heads[name].copy() for name in model.heads},
                           prediction.tables)
        reordered = Prediction(prediction.probs, dict(reversed(prediction.heads.items())), prediction.tables,
                               prediction.logits[::-1].copy())
        expected = sampler.distributions(apart, token_id)
        np.testing.assert_array_equal(sampler.distributions(prediction, token_id), expected)
        np.testing.assert_array_equal(sampler.distributions(reordered, token_id), expected)
        again = model.predict(window, features)
        np.testing.assert_array_equal(again.logits, prediction.logits)
        model.predict(window[::-1].copy(), features)
        np.testing.assert_array_equal(prediction.logits, again.logits, err_msg="a prediction keeps its own copy")
