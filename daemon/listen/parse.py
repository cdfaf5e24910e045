"""Raw MIDI bytes from the input port into ``mido.Message`` objects, in the loop's time.

rtmidi hands over one JACK event's bytes at a time (:class:`..ports.input.RawInput`). A
well-formed event is exactly one message, and is parsed as mido's rtmidi port would
(``Message.from_bytes``: an invalid event is dropped whole, so a note 200 never becomes
another message).

One kind of event is not one message: a *sysex lump*. RtMidi's JACK input joins every
event after a sysex that lacks its F7 into that sysex until an event ends with F7, and
delivers the lump then. :func:`split_lump` cuts it again where the sysex must have
ended: at the first status byte (>= 0x80) that is not real-time. Real-time bytes
(0xF8-0xFF, clock among them) may sit inside a sysex by the MIDI standard and come out
as their own messages, in wire order; the unterminated sysex is dropped; the rest is split at each
status byte, each piece parsed on its own. So the note-offs of a keyboard are not lost
after a cut sysex: they come, late, with the F7 that ends the lump.
"""

from __future__ import annotations

from collections.abc import Sequence

import mido

from ..music.midi import END_OF_EXCLUSIVE, FIRST_REALTIME, FIRST_STATUS, SYSTEM_EXCLUSIVE

_from_bytes = mido.Message.from_bytes


def split_lump(data: Sequence[int]) -> list[list[int]]:
    """The messages' bytes in a sysex lump, in order; pieces may still be malformed."""
    pieces: list[list[int]] = []
    current: list[int] = []
    for byte in data:
        if byte >= FIRST_REALTIME:
            # Inside a sysex it is its own message and the sysex goes on; after another
            # message it was its own event (JACK events are whole): that message ended.
            if current and current[0] != SYSTEM_EXCLUSIVE:
                pieces.append(current)
                current = []
            pieces.append([byte])
        elif byte < FIRST_STATUS:
            current.append(byte)
        elif byte == END_OF_EXCLUSIVE and current and current[0] == SYSTEM_EXCLUSIVE:
            current.append(byte)
            pieces.append(current)
            current = []
        else:  # a status byte ends what came before it (a cut sysex, a message)
            if current:
                pieces.append(current)
            current = [byte]
    if current:
        pieces.append(current)
    return pieces


class Parser:
    """Turns input events into messages and counts what it had to drop.

    Used by the loop only (:attr:`malformed` is read by the stats line on the same thread).
    """

    def __init__(self) -> None:
        self.malformed = 0  # pieces of input dropped: not a valid MIDI message
        self.split = 0  # sysex lumps cut up again

    def parse(self, data: Sequence[int]) -> list[mido.Message]:
        """The messages in one input event; an empty list when nothing valid. Never raises."""
        try:
            return [_from_bytes(data)]
        except ValueError:
            pass
        if not data or data[0] != SYSTEM_EXCLUSIVE:
            self.malformed += 1
            return []
        self.split += 1
        messages = []
        for piece in split_lump(data):
            try:
                messages.append(_from_bytes(piece))
            except ValueError:
                self.malformed += 1
        return messages
