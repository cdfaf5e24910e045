"""Start, stop and failure paths of `mididuet run`, through real JACK ports."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import mido
import pytest

from mididuet.daemon.predict import bundle
from tests.helpers.bundles import make_bundle
from tests.helpers.jack import Monitor, Player, hanging, onset_groups, poll

pytestmark = pytest.mark.jack

ALL_NOTES_OFF = 123


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_mid_answer_releases_every_note_and_exits_0(start_daemon, player: Player, monitor: Monitor,
                                                                 sig: int) -> None:
    daemon = start_daemon("--bpm", "60", "--answer-tokens", "20", "--phrase-gap", "150", "--channel", "2",
                          "--stats", "0.5")
    player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 2, 6)
    time.sleep(0.2)
    assert hanging(monitor.messages), "stopped while a note sounds"
    asked, asked_ns = time.monotonic(), time.monotonic_ns()
    assert daemon.stop(sig, timeout=5) == 0, daemon.stderr
    assert time.monotonic() - asked < 1.0
    assert poll(lambda: not hanging(monitor.messages), 1), "a note-off for every note-on"
    ccs = [m for _, m in monitor.of_type("control_change", since=asked_ns)]  # (not the one at start)
    assert any(m.control == ALL_NOTES_OFF and m.channel == 1 for m in ccs), "then CC 123 on the channel used"
    assert "stats: notes in 3" in daemon.stderr and "stats at exit" in daemon.stderr


def test_a_daemon_killed_mid_note_leaves_nothing_sounding_once_the_next_one_connects(
        start_daemon, player: Player, monitor: Monitor) -> None:
    """SIGKILL (as a segfault or the OOM killer would end it) gives the ledger no chance:
    the synth keeps the notes. The next mididuet on that output (systemd's restart) sends
    CC 123 on its channel as soon as the output is open, and they stop."""
    daemon = start_daemon("--bpm", "60", "--answer-tokens", "20", "--phrase-gap", "150", "--channel", "2")
    player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 2, 6)
    time.sleep(0.2)
    assert daemon.stop(signal.SIGKILL) == -signal.SIGKILL
    time.sleep(0.05)  # whatever the killed client's last JACK cycle carried has arrived
    assert hanging(monitor.messages, all_notes_off=True), "killed while a note sounds: nothing ended it"
    heard = len(monitor.messages)
    start_daemon("--channel", "2")
    assert poll(lambda: not hanging(monitor.messages, all_notes_off=True), 2), "the next run ends them"
    first = monitor.messages[heard][1]
    assert (first.type, first.control, first.channel) == ("control_change", ALL_NOTES_OFF, 1)


def test_record_writes_both_sides_on_two_tracks(start_daemon, player: Player, monitor: Monitor,
                                                tmp_path: Path) -> None:
    daemon = start_daemon("--record", str(tmp_path), "--phrase-gap", "150", "--bpm", "400",
                          "--answer-tokens", "4")
    played = [60, 62, 64]
    player.play(played)
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 4 and not hanging(monitor.messages), 5)
    assert daemon.stop() == 0
    files = list(tmp_path.glob("mididuet-*.mid"))
    assert len(files) == 1, files
    midi = mido.MidiFile(files[0])
    assert [t.name for t in midi.tracks] == ["player", "mididuet"]

    def notes(track: mido.MidiTrack) -> list[int]:
        return [m.note for m in track if m.type == "note_on" and m.velocity > 0]

    assert notes(midi.tracks[0]) == played
    assert notes(midi.tracks[1]) == [m.note for _, m in monitor.note_ons()]
    # The answer comes after the call in the file's time too.
    player_end = sum(m.time for m in midi.tracks[0])
    first_answer = 0
    for m in midi.tracks[1]:
        first_answer += m.time
        if m.type == "note_on":
            break
    assert first_answer > player_end - 100  # ticks; the last player event is a note-off


@pytest.mark.parametrize(("breakage", "expected"), [
    ({"drop_metadata": (bundle.META_VOCABULARY,)}, "metadata lacks mididuet.vocabulary"),
    ({"output_width": 5}, "width 5"),
])
def test_a_refused_model_is_one_clear_line_and_exit_2(start_daemon, tmp_path: Path, breakage: dict,
                                                       expected: str) -> None:
    bad = make_bundle(tmp_path / "bad.onnx", **breakage)
    daemon = start_daemon(model=bad, ready=False)
    assert daemon.wait(timeout=10) == 2
    errors = [line for line in daemon.lines if line.startswith("mididuet: error:")]
    assert len(errors) == 1 and expected in errors[0], daemon.stderr
    assert "Traceback" not in daemon.stderr


def test_a_file_that_is_not_onnx_is_refused(start_daemon, tmp_path: Path) -> None:
    bad = tmp_path / "notes.onnx"
    bad.write_text("not a model")
    daemon = start_daemon(model=bad, ready=False)
    assert daemon.wait(timeout=10) == 2
    assert "not a readable ONNX model" in daemon.stderr and "Traceback" not in daemon.stderr


def test_a_bad_setting_is_a_usage_error(start_daemon) -> None:
    daemon = start_daemon("--channel", "17", ready=False)
    assert daemon.wait(timeout=10) == 2
    assert "channel must be an integer in range 1..16" in daemon.stderr


def test_the_shipped_model_answers(start_daemon, player: Player, monitor: Monitor) -> None:
    if not bundle.shipped_model_path().is_file():
        pytest.skip("models/chopin.onnx is not built yet")
    started = time.monotonic()
    # A fixed answer length: under load two of the player's sends can fall inside one chord window.
    daemon = start_daemon("--phrase-gap", "150", "--bpm", "400", "--seed", "1", "--answer-tokens", "6", model=None)
    assert time.monotonic() - started < 5
    assert "chopin.onnx" in daemon.wait_for_line("ready")
    player.play([60, 64, 67, 72, 67, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 6 and not hanging(monitor.messages), 6)
    assert all(21 <= m.note <= 108 for _, m in monitor.note_ons())
