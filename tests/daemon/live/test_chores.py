"""The loop's work between notes: chores when due, idle work with real faults."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from mididuet.daemon.listen.intake import Intake
from mididuet.daemon.live.chores import Chore, Chores, IdleWork, sysex_closer
from mididuet.daemon.live.record import PLAYER, WRITE_EVERY_NS, SessionRecorder
from mididuet.daemon.music.units import NS_PER_MS as MS
from mididuet.daemon.music.units import NS_PER_S as NS


def test_each_chore_runs_when_due_and_a_named_one_at_once() -> None:
    ran: list[tuple[str, int]] = []
    chores = Chores([Chore("a", 1.0, lambda now: ran.append(("a", now))),
                     Chore("b", 0.25, lambda now: ran.append(("b", now)), first_s=0.0)])
    chores.start(0)
    assert chores.next_due() == 0
    chores.run_due(0)
    assert ran == [("b", 0)] and chores.next_due() == 250 * MS
    chores.run_due(300 * MS, also="a")  # "a" is not due for 0.7 s more, but asked for
    assert ran[1:] == [("a", 300 * MS), ("b", 300 * MS)]
    chores.run_due(400 * MS)
    assert len(ran) == 3, "nothing was due"


def test_the_sysex_closer_only_sends_after_a_quiet_spell() -> None:
    intake = Intake()
    closed: list[int] = []
    chore = sysex_closer(intake, lambda: closed.append(1))
    intake.last_ns = 1000 * MS
    chore.action(1010 * MS)  # an event came 10 ms ago: nothing can be held
    assert closed == []
    chore.action(1100 * MS)
    assert closed == [1]


def test_a_disk_error_while_recording_is_logged_and_the_loop_goes_on(tmp_path: Path,
                                                                      caplog: pytest.LogCaptureFixture) -> None:
    """A real file-system fault (the temporary file's name is taken by a directory)."""
    recorder = SessionRecorder(tmp_path, name="s.mid")
    idle = IdleWork(Intake(), recorder)
    recorder.record(PLAYER, mido.Message("note_on", note=60, velocity=80), 0)
    (tmp_path / "s.mid.tmp").mkdir()
    with caplog.at_level("INFO", logger="mididuet.runner"):
        idle.run(WRITE_EVERY_NS)  # must not raise: a full disk must not stop the music
        idle.run(WRITE_EVERY_NS + 1)
        assert sum("could not write the recording" in r.message for r in caplog.records) == 1
        (tmp_path / "s.mid.tmp").rmdir()
        recorder.record(PLAYER, mido.Message("note_off", note=60), WRITE_EVERY_NS * 2)
        idle.run(WRITE_EVERY_NS * 2)
        assert any("recording written again" in r.message for r in caplog.records)
    assert len(mido.MidiFile(recorder.path).tracks[0]) == 5  # name, tempo, 2 notes, end


def test_drops_are_warned_about_at_most_every_ten_seconds(caplog: pytest.LogCaptureFixture) -> None:
    intake = Intake(soft_limit=1, hard_limit=1)
    idle = IdleWork(intake, None)
    for _ in range(5):
        intake.put(mido.Message("clock"))  # nobody takes them: 4 dropped
    with caplog.at_level("WARNING", logger="mididuet.runner"):
        idle.run(NS)
        intake.put(mido.Message("pitchwheel"))
        idle.run(2 * NS)  # within ten seconds: no second warning
        idle.run(12 * NS)
    warnings = [r.message for r in caplog.records if "input overloaded" in r.message]
    assert warnings == ["input overloaded: dropped 4 messages (4 in all: clock 4); notes and their "
                        "note-offs are kept first",
                        "input overloaded: dropped 1 messages (5 in all: clock 4, pitchwheel 1); notes and "
                        "their note-offs are kept first"]
