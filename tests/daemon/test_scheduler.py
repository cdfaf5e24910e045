"""Scheduler: pulse sources, voicing, velocity, and the note ledger."""

from __future__ import annotations

import mido
import pytest

from daemon.scheduler import (
    ALL_NOTES_OFF,
    DEFAULT_BPM,
    DEFAULT_VELOCITY,
    MAX_BPM,
    MIN_BPM,
    NoteLedger,
    Pulse,
    bpm_to_ns,
    velocity_for,
    voice,
)
from tests.bundle_factory import DEFAULT_VOCABULARY

MS = 1_000_000


def test_fixed_bpm_wins() -> None:
    assert Pulse(bpm=100).pulse_ns(0, 123 * MS) == 600 * MS


def test_player_pulse_is_clamped_to_a_musical_range() -> None:
    pulse = Pulse()
    assert pulse.pulse_ns(0, None) == bpm_to_ns(DEFAULT_BPM)
    assert pulse.pulse_ns(0, 400 * MS) == 400 * MS
    assert pulse.pulse_ns(0, 50 * MS) == bpm_to_ns(MAX_BPM) == 200 * MS
    assert pulse.pulse_ns(0, 5000 * MS) == bpm_to_ns(MIN_BPM) == 1500 * MS


def test_midi_clock_at_24_ppq_gives_the_quarter_note() -> None:
    pulse = Pulse(follow_clock=True)
    tick = 500 * MS // 24  # 120 BPM
    for i in range(30):
        pulse.clock_tick(i * tick)
    assert pulse.pulse_ns(29 * tick, None) == pytest.approx(500 * MS, rel=1e-3)
    # A clock that stopped more than a second ago is ignored: the player's pulse returns.
    assert pulse.pulse_ns(29 * tick + 2000 * MS, 300 * MS) == 300 * MS


def test_clock_is_ignored_unless_followed() -> None:
    pulse = Pulse()
    for i in range(30):
        pulse.clock_tick(i * MS)
    assert pulse.pulse_ns(30 * MS, 400 * MS) == 400 * MS


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


def test_a_runaway_midi_clock_is_clamped_like_the_player() -> None:
    from daemon.scheduler import MAX_BPM, Pulse, bpm_to_ns

    pulse = Pulse(follow_clock=True)
    for i in range(30):
        pulse.clock_tick(i * 1_000_000)  # a tick every 1 ms: 2,500 BPM
    assert pulse.pulse_ns(30_000_000, None) == bpm_to_ns(MAX_BPM)


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
