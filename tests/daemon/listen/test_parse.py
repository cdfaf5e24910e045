"""Input bytes into messages (:mod:`..listen.parse`): events as RtMidi's JACK input hands
them over, sysex lumps included (the bytes below are what a raw tap recorded on the wire
after an unterminated sysex, tests/reliability/test_odd_input.py)."""

from __future__ import annotations

import mido

from mididuet.daemon.listen.parse import Parser, split_lump


def _types(messages: list[mido.Message]) -> list[str]:
    return [str(m) for m in messages]


def test_a_well_formed_event_is_one_message_and_a_bad_one_none() -> None:
    parser = Parser()
    assert _types(parser.parse([0x90, 60, 80])) == ["note_on channel=0 note=60 velocity=80 time=0"]
    assert parser.parse([0xF0, 1, 2, 0xF7])[0].data == (1, 2)
    # An invalid event is dropped whole, as mido's port did: note 200 is not split into
    # a note-on and a program change.
    for bad in ([0x90, 200, 64], [0x90, 60], [0x40], [0xF4], [0xF7], []):
        assert parser.parse(bad) == [], bad
    assert parser.malformed == 6 and parser.split == 0


def test_a_sysex_lump_is_cut_at_the_first_status_byte() -> None:
    lump = [0xF0, 0x01, 0x02, 0x80, 55, 0, 0x90, 60, 80, 0xF8, 0x80, 60, 0, 0x90, 62, 80, 0xF7]
    assert split_lump(lump) == [[0xF0, 0x01, 0x02], [0x80, 55, 0], [0x90, 60, 80], [0xF8], [0x80, 60, 0],
                                [0x90, 62, 80], [0xF7]]
    parser = Parser()
    assert [(m.type, getattr(m, "note", None)) for m in parser.parse(lump)] == [
        ("note_off", 55), ("note_on", 60), ("clock", None), ("note_off", 60), ("note_on", 62)]
    assert parser.split == 1 and parser.malformed == 2  # the cut sysex and the stray F7


def test_real_time_bytes_inside_a_sysex_come_out_and_the_sysex_stays_whole() -> None:
    parser = Parser()
    messages = parser.parse([0xF0, 0x7D, 0x01, 0xF8, 0x02, 0xF7])
    assert [m.type for m in messages] == ["clock", "sysex"]
    assert messages[1].data == (0x7D, 0x01, 0x02)
    # A second sysex inside the lump ends the first and is kept when it is whole.
    messages = parser.parse([0xF0, 0x01, 0xF0, 0x02, 0xF7, 0xB0, 64, 0, 0xF7])
    assert [m.type for m in messages] == ["sysex", "control_change"]
    assert parser.malformed == 2
