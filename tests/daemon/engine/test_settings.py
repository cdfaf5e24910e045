"""EngineSettings.validate: each bad field is named with its allowed range."""

from __future__ import annotations

import pytest

from mididuet.daemon.engine.settings import EngineSettings


def test_defaults_are_valid() -> None:
    EngineSettings().validate()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"mode": "trio"}, "mode must be one of duet, jam, solo"),
        ({"sampling": "beam"}, "sampling must be one of"),
        ({"chord_window_ms": -1}, r"chord_window_ms must be in range 0\.\.500"),
        ({"phrase_gap_ms": 10}, r"phrase_gap_ms must be in range 50\.\.10000"),
        ({"answer_tokens": 0}, r"answer_tokens must be an integer in range 1\.\.256"),
        ({"temperature": 0}, r"temperature must be in range 0\.05\.\.5"),
        ({"top_p": 1.5}, r"top_p must be in range \(0, 1\]"),
        ({"seed": -1}, "seed must be a non-negative integer"),
        ({"bpm": 1000}, r"bpm must be in range 20\.\.400"),
        ({"bpm": 100, "follow_clock": True}, "bpm and follow_clock exclude each other"),
        ({"velocity": 0}, r"velocity must be an integer in range 1\.\.127"),
        ({"channel": 17}, r"channel must be an integer in range 1\.\.16"),
        ({"channel_in": 0}, r"channel_in must be an integer in range 1\.\.16"),
        ({"cc_mute": 64}, "sustain pedal"),
        ({"cc_panic": 123}, r"cc_panic must be an integer in range 0\.\.119"),
        ({"cc_mode": 21}, "must differ"),
        ({"channel": True}, "channel must be an integer"),
    ],
)
def test_bad_values_are_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        EngineSettings(**fields).validate()  # type: ignore[arg-type]
