"""Controls through real JACK ports: --thru, the temperature CC, the mute CC."""

from __future__ import annotations

import time
from pathlib import Path

import mido
import pytest

from mididuet.daemon.engine.settings import EngineSettings
from tests.helpers.bundles import make_bundle
from tests.helpers.jack import Monitor, Player, onset_groups, poll, quiet_for

pytestmark = pytest.mark.jack

CC = EngineSettings()  # default control numbers


def test_thru_forwards_the_players_notes_on_the_output_channel(start_daemon, player: Player,
                                                                monitor: Monitor) -> None:
    start_daemon("--thru", "--channel", "5", "--phrase-gap", "3000")
    sent = time.monotonic_ns()
    player.send(mido.Message("note_on", note=50, velocity=90, channel=0))
    assert poll(lambda: monitor.note_ons(), 2)
    (t_on, on), = monitor.note_ons()
    assert (on.note, on.velocity, on.channel) == (50, 90, 4)
    assert t_on - sent < 50_000_000, "thru must be immediate, not scheduled"
    player.send(mido.Message("note_off", note=50, velocity=0, channel=0))
    assert poll(lambda: monitor.note_offs(), 2)
    assert monitor.note_offs()[0][1].note == 50


def test_without_thru_the_players_notes_are_not_forwarded(start_daemon, player: Player,
                                                          monitor: Monitor) -> None:
    start_daemon("--phrase-gap", "3000")
    player.play([50, 52])
    assert quiet_for(monitor, 0.5, 2)
    # Only the CC 123 every run sends when its output opens.
    assert [(m.type, m.control) for _, m in monitor.messages] == [("control_change", 123)]


@pytest.fixture(scope="module")
def varied_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Measured for this bundle over 24-token answers and 8 seeds: 9-16 distinct tokens at
    # temperature 5, 2-3 at 0.1, so the CC's effect is visible in one answer.
    return make_bundle(tmp_path_factory.mktemp("models") / "varied.onnx", seed=5)


def test_temperature_cc_changes_how_varied_the_answer_is(start_daemon, player: Player, monitor: Monitor,
                                                         varied_model: Path) -> None:
    daemon = start_daemon("--model", str(varied_model), "--sampling", "temperature", "--temperature", "5",
                          "--answer-tokens", "24", "--phrase-gap", "150", "--bpm", "400", "--seed", "2",
                          "--log-level", "debug", model=None)
    distinct = []
    for cc_value in (None, 0):  # first at --temperature 5, then CC 21 = 0 (the lowest temperature)
        if cc_value is not None:
            player.send(mido.Message("control_change", control=CC.cc_temperature, value=cc_value))
        mark = len(daemon.lines)
        player.play([60, 64, 67])
        assert poll(lambda m=mark: len(daemon.played_tokens(m)) >= 24, 10), daemon.stderr
        assert quiet_for(monitor, 0.3, 5)
        distinct.append(len(set(daemon.played_tokens(mark))))
    hot, cold = distinct
    assert hot >= 8 and cold <= 4, f"distinct tokens: {distinct}"


def test_mute_cc_silences_answers_until_unmuted(start_daemon, player: Player, monitor: Monitor) -> None:
    start_daemon("--phrase-gap", "150", "--bpm", "400", "--answer-tokens", "3")
    player.send(mido.Message("control_change", control=CC.cc_mute, value=127))
    player.play([60, 62, 64])
    assert quiet_for(monitor, 0.8, 3) and not monitor.note_ons(), "muted: no answer"
    player.send(mido.Message("control_change", control=CC.cc_mute, value=0))
    player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 3, 5), "unmuted: the answer comes"
