"""The note ledger: every note-on tracked until its note-off is sent."""

from __future__ import annotations

import mido
import pytest

from mididuet.daemon.music.midi import ALL_NOTES_OFF
from mididuet.daemon.play.ledger import NoteLedger


class Port:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[mido.Message] = []
        self.fail = fail

    def __call__(self, msg: mido.Message) -> None:
        if self.fail:
            raise OSError("port gone")
        self.sent.append(msg)


def test_ledger_tracks_each_note_until_its_scheduled_note_off() -> None:
    port = Port()
    ledger = NoteLedger(port)
    ledger.note_on(0, 60, 90, "answer", off_at_ns=100)
    ledger.note_on(0, 64, 90, "answer", off_at_ns=200)
    assert ledger.open_notes() == [(0, 60), (0, 64)]
    assert ledger.next_due == 100
    ledger.release_due(99)
    assert len(ledger) == 2
    ledger.release_due(150)
    assert ledger.open_notes() == [(0, 64)]
    assert port.sent[-1].type == "note_off" and port.sent[-1].note == 60
    ledger.release_due(200)
    assert len(ledger) == 0
    assert ledger.next_due is None


def test_restriking_a_sounding_note_ends_it_first_and_the_old_note_off_is_void() -> None:
    port = Port()
    ledger = NoteLedger(port)
    ledger.note_on(0, 60, 90, "answer", off_at_ns=100)
    ledger.note_on(0, 60, 90, "answer", off_at_ns=300)
    assert [m.type for m in port.sent] == ["note_on", "note_off", "note_on"]
    ledger.release_due(150)  # the first note's note-off must not end the second note
    assert ledger.is_open(0, 60)
    ledger.release_due(300)
    assert not ledger.is_open(0, 60)


def test_release_owner_and_owned_note_off() -> None:
    port = Port()
    ledger = NoteLedger(port)
    ledger.note_on(0, 60, 90, "answer")
    ledger.note_on(0, 62, 90, "thru")
    assert not ledger.note_off(0, 60, owner="thru")
    ledger.release_owner("answer")
    assert ledger.open_notes() == [(0, 62)]


def test_release_all_sends_note_offs_then_all_notes_off_per_channel() -> None:
    port = Port()
    ledger = NoteLedger(port)
    ledger.note_on(0, 60, 90, "answer", off_at_ns=100)
    ledger.note_on(3, 61, 90, "thru")
    port.sent.clear()
    ledger.release_all()
    assert sorted((m.channel, m.note) for m in port.sent if m.type == "note_off") == [(0, 60), (3, 61)]
    tail = port.sent[2:]
    assert [(m.channel, m.control) for m in tail] == [(0, ALL_NOTES_OFF), (3, ALL_NOTES_OFF)]
    assert len(ledger) == 0 and ledger.next_due is None
    port.sent.clear()
    ledger.release_all()  # again: nothing open, only the CC 123 safety net
    assert all(m.type == "control_change" for m in port.sent)


def test_release_all_survives_a_dead_port_and_empties_the_ledger() -> None:
    port = Port()
    ledger = NoteLedger(port)
    ledger.note_on(0, 60, 90, "answer")
    port.fail = True
    ledger.release_all()
    assert len(ledger) == 0


def test_a_failing_note_on_stays_in_the_ledger_and_the_error_propagates() -> None:
    ledger = NoteLedger(Port(fail=True))
    with pytest.raises(OSError, match="port gone"):
        ledger.note_on(0, 60, 90, "answer")
    assert ledger.is_open(0, 60)  # a spare note-off later is harmless; a hanging note is not


@pytest.mark.parametrize(("channel", "note", "velocity"), [(16, 60, 90), (0, 128, 90), (0, -1, 90), (0, 60, 128)])
def test_the_ledger_refuses_a_note_out_of_range_before_entering_it(channel: int, note: int, velocity: int) -> None:
    # The ledger builds its messages without mido's checks (they cost ~5 µs at a note's
    # deadline), so its own check is what stands between a bug and a bad byte on the wire.
    port = Port()
    ledger = NoteLedger(port)
    with pytest.raises(ValueError, match="out of range"):
        ledger.note_on(channel, note, velocity, "answer", off_at_ns=100)
    assert len(ledger) == 0 and ledger.next_due is None and port.sent == []


def test_the_ledgers_messages_are_the_bytes_mido_would_make() -> None:
    port = Port()
    ledger = NoteLedger(port)
    ledger.note_on(9, 127, 1, "answer")
    ledger.note_off(9, 127)
    assert [m.bytes() for m in port.sent] == [mido.Message("note_on", channel=9, note=127, velocity=1).bytes(),
                                             mido.Message("note_off", channel=9, note=127).bytes()]


def test_a_rescheduled_note_ends_at_its_new_time_and_only_its_owner_s() -> None:
    port = Port()
    ledger = NoteLedger(port)
    ledger.note_on(0, 60, 90, "answer", off_at_ns=100)
    ledger.note_on(0, 62, 90, "thru")
    assert ledger.reschedule(0, 60, 250, "answer")
    assert not ledger.reschedule(0, 62, 250, "answer"), "another owner's note is not moved"
    ledger.release_due(200)  # the note-off first scheduled no longer ends it
    assert ledger.is_open(0, 60)
    ledger.release_due(250)
    assert not ledger.is_open(0, 60)
    assert not ledger.reschedule(0, 60, 400, "answer"), "a note that has ended is not moved"
    assert ledger.open_notes() == [(0, 62)]
