"""Voicing and velocity: chords near the player's hand, every note on the piano."""

from __future__ import annotations

import pytest

from mididuet.daemon.play.voicing import DEFAULT_VELOCITY, velocity_for, voice
from tests.helpers.bundles import DEFAULT_VOCABULARY


def test_chords_are_voiced_near_the_register_and_notes_keep_their_octave() -> None:
    assert voice("0.4.7", 60) == [60, 64, 67]
    assert voice("0.4.7", 84) == [84, 88, 91]
    assert voice("E-4", 30) == [63]


@pytest.mark.parametrize("register", [0, 21, 60, 108, 127])
def test_every_voiced_note_is_on_the_piano(register: int) -> None:
    for token in [*DEFAULT_VOCABULARY, "11.3.6", "C8", "B-0"]:
        assert all(21 <= n <= 108 for n in voice(token, register)), token


def test_velocity_follows_the_player_unless_fixed() -> None:
    assert velocity_for(None, None) == DEFAULT_VELOCITY
    assert velocity_for(None, 55) == 55
    assert velocity_for(100, 55) == 100
