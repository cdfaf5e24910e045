"""Malformed and odd input through a real JACK server into a real ``mididuet run``.

The test's keyboard here is python-rtmidi itself (not mido), because mido refuses to build
the messages we want to send: notes and velocities above 127, running status, status bytes
MIDI does not define. ``rtmidi.MidiOut.send_message`` puts those bytes on the JACK port
as they are (python-rtmidi only refuses a message longer than 3 bytes that is not sysex,
so running status goes out the way a raw device streams it: a status event, then
data-only events).

The daemon's input callback gets each JACK event's raw bytes; its loop parses them
(``Message.from_bytes`` per event: an invalid event is dropped whole; a sysex lump is
cut up again, :mod:`mididuet.daemon.listen.parse`). The
daemon's ``--record`` file holds every channel message the engine was fed, so it shows
exactly what got through. A raw rtmidi listener on the same output shows what was on
the wire.

After each run: the process is still running, has printed no traceback, exits 0 on
SIGTERM, and the monitor saw a note-off for every note-on.
"""

from __future__ import annotations

import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import mido
import pytest
import rtmidi

from tests.helpers.jack import Monitor, hanging, onset_groups, poll, quiet_for

pytestmark = pytest.mark.jack

STEP_S = 0.03  # between raw events: JACK keeps their order anyway, this keeps them apart in time


class RawKeyboard:
    """A JACK MIDI output that sends bytes exactly as given, and a raw listener on it."""

    def __init__(self) -> None:
        client = f"mdtest-raw-{uuid.uuid4().hex[:6]}"
        self.out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, client)
        self.out.open_virtual_port("out")
        self.name = f"{client}:out"
        self.wire: list[list[int]] = []
        # A second client reading the same port, with nothing filtered: the wire as sent.
        self.tap = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"{client}-tap")
        self.tap.ignore_types(sysex=False, timing=False, active_sense=False)
        self.tap.open_port(self._tap_index())
        self.tap.set_callback(lambda event, _data: self.wire.append(list(event[0])))

    def _tap_index(self) -> int:
        names = self.tap.get_ports()
        return next(i for i, name in enumerate(names) if name == self.name)

    def send(self, *events: list[int]) -> None:
        for event in events:
            self.out.send_message(event)
            time.sleep(STEP_S)

    def close(self) -> None:
        self.tap.cancel_callback()
        self.tap.close_port()
        self.out.close_port()


@pytest.fixture
def raw(jack_server) -> Iterator[RawKeyboard]:
    keyboard = RawKeyboard()
    yield keyboard
    keyboard.close()


def _recorded_player(directory: Path) -> list[mido.Message]:
    files = list(directory.glob("mididuet-*.mid"))
    assert len(files) == 1, files
    return [m for m in mido.MidiFile(files[0]).tracks[0] if not m.is_meta]


def _stop_cleanly(daemon, monitor: Monitor) -> None:
    assert daemon.process.poll() is None, f"the daemon died:\n{daemon.stderr}"
    assert daemon.stop(signal.SIGTERM) == 0, daemon.stderr
    assert "Traceback" not in daemon.stderr, daemon.stderr
    assert poll(lambda: not hanging(monitor.messages), 1), f"hanging: {hanging(monitor.messages)}"


# Each attack: the raw events, and the channel messages that must reach the engine.
ATTACKS: list[tuple[str, list[list[int]], list[str]]] = [
    ("note number 200", [[0x90, 200, 64]], []),
    ("velocity 200", [[0x90, 60, 200]], []),
    ("note and velocity 128", [[0x95, 128, 128]], []),
    ("note-on velocity 0 as note-off", [[0x90, 61, 90], [0x90, 61, 0]], ["note_on 61 90", "note_on 61 0"]),
    ("note-off without note-on", [[0x80, 70, 0], [0x8F, 0, 127]], ["note_off 70 0", "note_off 0 127"]),
    ("duplicate note-ons", [[0x90, 65, 80], [0x90, 65, 90], [0x80, 65, 0]],
     ["note_on 65 80", "note_on 65 90", "note_off 65 0"]),
    ("channel change mid-phrase", [[0x90, 67, 80], [0x91, 67, 80], [0x80, 67, 0], [0x9F, 69, 80], [0x81, 67, 0],
                                   [0x8F, 69, 0]],
     ["note_on 67 80", "note_on 67 80", "note_off 67 0", "note_on 69 80", "note_off 67 0", "note_off 69 0"]),
    # Running status: the second note's events carry no status byte. Not valid JACK MIDI
    # (events must be complete messages), so mido drops those events whole.
    ("running status", [[0x90, 72, 80], [74, 80], [0x90, 72, 0], [74, 0]], ["note_on 72 80", "note_on 72 0"]),
    ("system and undefined bytes", [[0xF8], [0xFE], [0xFF], [0xF4], [0xF9], [0xF0, 0x7E, 0x7F, 0x06, 0x01, 0xF7],
                                    [0xF2, 0x10, 0x20]], []),
    ("stray data bytes", [[0x40], [0x40, 0x40], [0x7F, 0x00, 0x7F]], []),
    ("truncated messages", [[0x90], [0x90, 60], [0xB0, 64]], []),
]


def _describe(msg: mido.Message) -> str:
    value = getattr(msg, "velocity", getattr(msg, "value", ""))
    return f"{msg.type} {getattr(msg, 'note', getattr(msg, 'control', ''))} {value}"


def test_malformed_bytes_are_dropped_odd_messages_handled_nothing_hangs(start_daemon, raw: RawKeyboard,
                                                                        monitor: Monitor, tmp_path: Path) -> None:
    # A phrase gap longer than each attack's pause: the attacks are one long call, so
    # answer notes never share a pitch with a thru note mid-attack (that re-strike is
    # covered by the engine tests) and the figures below count the attacks alone.
    daemon = start_daemon("--in", raw.name, "--out", monitor.name, "--thru", "--phrase-gap", "1500",
                          "--bpm", "400", "--answer-tokens", "2", "--record", str(tmp_path), ports=False)
    sent = 0
    for _name, events, _expected in ATTACKS:
        raw.send(*events)
        sent += len(events)
        time.sleep(0.25)
        assert daemon.process.poll() is None, daemon.stderr
    # The daemon still plays: a normal phrase gets its answer.
    mark = time.monotonic_ns()
    raw.send([0x90, 60, 80], [0x80, 60, 0], [0x90, 64, 80], [0x80, 64, 0])
    assert poll(lambda: len(onset_groups(monitor.note_ons(since=mark))) >= 3, 8), (raw.wire, daemon.stderr)
    assert quiet_for(monitor, 0.3, 5)
    _stop_cleanly(daemon, monitor)

    # Everything was on the wire (the raw tap saw each event; JACK drops nothing here)...
    assert len(raw.wire) == sent + 4, raw.wire
    # ...and exactly the valid channel messages reached the engine, in order.
    expected = [line for _name, _events, lines in ATTACKS for line in lines]
    expected += ["note_on 60 80", "note_off 60 0", "note_on 64 80", "note_off 64 0"]
    assert [_describe(m) for m in _recorded_player(tmp_path)] == expected
    assert all(0 <= m.note <= 127 for _, m in monitor.note_ons())
    print(f"\nodd input: {sent + 4} events sent, {len(raw.wire)} on the wire, "
          f"{len(expected)} reached the engine, {len(monitor.note_ons())} notes played, 0 hanging")


def test_a_note_off_lost_to_running_status_is_released_by_panic_and_stop(start_daemon, raw: RawKeyboard,
                                                                       monitor: Monitor) -> None:
    """The one live consequence of dropping running status: a thru note whose note-off came
    without its status byte sounds until panic (CC 24) or stop. Both end it."""
    daemon = start_daemon("--in", raw.name, "--out", monitor.name, "--thru", "--phrase-gap", "3000", ports=False)
    raw.send([0x90, 50, 80], [50, 0])  # the note-off as running status: dropped
    assert poll(lambda: hanging(monitor.messages) == {(0, 50)}, 2), monitor.messages
    raw.send([0xB0, 24, 127])  # panic
    assert poll(lambda: not hanging(monitor.messages), 2), "panic ends it"
    raw.send([0x90, 52, 80], [52, 0])
    assert poll(lambda: hanging(monitor.messages) == {(0, 52)}, 2)
    _stop_cleanly(daemon, monitor)  # and so does SIGTERM


def test_a_key_and_the_pedal_held_for_seconds(start_daemon, raw: RawKeyboard, monitor: Monitor) -> None:
    """The real-JACK variant of held-for-minutes (the engine tests hold for minutes): no
    answer while a key or the pedal is down, the answer right after, the thru note held."""
    daemon = start_daemon("--in", raw.name, "--out", monitor.name, "--thru", "--phrase-gap", "150",
                          "--bpm", "400", "--answer-tokens", "3", ports=False)
    raw.send([0x90, 60, 80], [0x90, 62, 80], [0x80, 62, 0])  # 60 stays down
    time.sleep(2.0)
    assert [m.note for _, m in monitor.note_ons()] == [60, 62], "no answer while a key is held"
    assert hanging(monitor.messages) == {(0, 60)}, "the held key's thru note sounds"
    raw.send([0x80, 60, 0])
    assert poll(lambda: len(monitor.note_ons()) >= 3 + 2 and not hanging(monitor.messages), 3)

    assert quiet_for(monitor, 0.3, 3)
    mark = time.monotonic_ns()
    raw.send([0xB0, 64, 127], [0x90, 64, 80], [0x80, 64, 0])  # pedal down, a note, key up
    time.sleep(2.0)
    assert [m.note for _, m in monitor.note_ons(since=mark)] == [64], "no answer while the pedal is down"
    raw.send([0xB0, 64, 0])
    assert poll(lambda: len(monitor.note_ons(since=mark)) >= 1 + 3, 3), "the answer follows the pedal"
    _stop_cleanly(daemon, monitor)


# The fault for real: RtMidi's JACK input (C++, below any Python callback) joins every
# event after a sysex without its F7 into that sysex and delivers nothing until an event
# ends with F7. The keyboard's raw tap (a plain RtMidi input, no closer) shows it held; the
# daemon's input has a sysex closer (daemon.ports.SysexCloser) and must not be held.
SYSEX_CLOSE_BOUND_S = 0.5  # the closer fires after 50 ms of quiet; the rest is slack for a busy machine


def test_notes_after_an_unterminated_sysex_reach_the_engine(start_daemon, raw: RawKeyboard,
                                                            monitor: Monitor) -> None:
    daemon = start_daemon("--in", raw.name, "--out", monitor.name, "--thru", "--phrase-gap", "3000", ports=False)
    raw.send([0xF0, 0x01, 0x02])  # a sysex cut short (a cable pulled mid-dump)
    sent = time.monotonic_ns()
    raw.send([0x90, 60, 80], [0x80, 60, 0])
    assert poll(lambda: monitor.note_ons(), SYSEX_CLOSE_BOUND_S), "the note after the broken sysex is played thru"
    delay_ms = (monitor.note_ons()[0][0] - sent) / 1e6
    print(f"\nfirst note after a cut sysex played thru {delay_ms:.1f} ms after it was sent")
    assert not any(0x90 in event for event in raw.wire), f"RtMidi without a closer holds it: {raw.wire}"
    _stop_cleanly(daemon, monitor)


def test_a_key_released_after_a_cut_sysex_is_released(start_daemon, raw: RawKeyboard, monitor: Monitor) -> None:
    """The events after a cut sysex come out when the closer ends it: the broken sysex is
    dropped, every message after it is played in order, and a key released meanwhile is
    released."""
    daemon = start_daemon("--in", raw.name, "--out", monitor.name, "--thru", "--phrase-gap", "3000", ports=False)
    raw.send([0x90, 55, 80])  # a key down before the broken sysex...
    assert poll(lambda: [m.note for _, m in monitor.note_ons()] == [55], 2), monitor.messages
    raw.send([0xF0, 0x01, 0x02], [0x80, 55, 0], [0x90, 60, 80], [0xF8], [0x80, 60, 0], [0x90, 62, 80])
    assert poll(lambda: hanging(monitor.messages) == {(0, 62)}, 2), (raw.wire, monitor.messages)
    assert [m.note for _, m in monitor.note_ons()] == [55, 60, 62]
    raw.send([0x80, 62, 0], [0x90, 64, 80], [0x80, 64, 0])  # and input works as before
    assert poll(lambda: [m.note for _, m in monitor.note_ons()] == [55, 60, 62, 64], 2), monitor.messages
    assert poll(lambda: not hanging(monitor.messages), 1), monitor.messages
    assert len(raw.wire) == 1, f"the tap (no closer) is still held after the first note: {raw.wire}"
    _stop_cleanly(daemon, monitor)


def test_the_sysex_closer_is_quiet_while_the_player_plays(start_daemon, raw: RawKeyboard,
                                                          monitor: Monitor) -> None:
    """The closer sends an empty sysex into the daemon's own input only after 50 ms with no
    input: about 20 a second when nobody plays, none while events keep coming."""
    daemon = start_daemon("--in", raw.name, "--out", monitor.name, "--phrase-gap", "3000", ports=False)
    closed: list[list[int]] = []
    tap = rtmidi.MidiIn(rtmidi.API_UNIX_JACK, f"mdtest-closer-tap-{uuid.uuid4().hex[:6]}")
    try:
        tap.ignore_types(sysex=False)
        tap.set_callback(lambda event, _data: closed.append(list(event[0])))
        names = tap.get_ports()
        closers = [n for n in names if n.startswith("mididuet sysex-closer")]
        assert len(closers) == 1, names
        tap.open_port(names.index(closers[0]))
        time.sleep(1.0)
        quiet = len(closed)
        assert 10 <= quiet <= 25 and all(event == [0xF0, 0xF7] for event in closed), closed
        del closed[:]
        for _ in range(50):  # a steady 40 ms stream of input for 2 s
            raw.out.send_message([0xB0, 1, 64])
            time.sleep(0.04)
        assert len(closed) <= 1, f"the closer fired {len(closed)} times while input was flowing"
    finally:
        tap.close_port()
        tap.delete()
    _stop_cleanly(daemon, monitor)
