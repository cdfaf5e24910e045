"""Record a session to a standard MIDI file: the player on track 1, mididuet on track 2.

The file is named ``mididuet-YYYYmmdd-HHMMSS.mid`` (local time at start) in the directory
given. It is written atomically (a temporary file renamed over it) on :meth:`close`, and
again by :meth:`SessionRecorder.write_if_due` every :data:`WRITE_EVERY_NS`, which the
runner calls in its idle time (never from the send path), so a process killed without
warning still leaves a recent complete version, and a SIGTERM handled by the runner
(which calls ``close``) leaves everything.

Each message is encoded as it is recorded (delta time and bytes, 3-6 bytes) into one
``bytearray`` per track, so memory is what the file will hold (a keyboard's ~10
messages/s cost ~150 kB an hour) and a rewrite is a header plus two buffers, not a
re-encoding of the whole session as mido's ``MidiFile.save`` would do.

Times are kept in ticks at 120 BPM and 960 ticks per beat (~0.52 ms per tick), finer
than MIDI's own transport. A message stamped before the previous one of its track (two
callers' clocks) is written at the previous one's tick.
"""

from __future__ import annotations

import os
import struct
from datetime import datetime
from pathlib import Path

import mido

from ..engine.observe import Observer
from ..music.units import NS_PER_S

TICKS_PER_BEAT = 960
TEMPO = 500_000  # µs per beat: 120 BPM
NS_PER_TICK = TEMPO * 1000 / TICKS_PER_BEAT
WRITE_EVERY_NS = 10 * NS_PER_S
PLAYER, MIDIDUET = 0, 1
TRACK_NAMES = ("player", "mididuet")
_RECORDED_TYPES = frozenset({"note_on", "note_off", "control_change", "pitchwheel", "aftertouch",
                             "polytouch", "program_change"})
_END_OF_TRACK = b"\x00\xff\x2f\x00"


def _varlen(value: int) -> bytes:
    """A MIDI variable-length quantity (7 bits per byte, high bit = more follows)."""
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def _meta(kind: int, data: bytes) -> bytes:
    """A meta event at delta 0."""
    return b"\x00\xff" + bytes([kind]) + _varlen(len(data)) + data


def _track_head(index: int) -> bytes:
    head = _meta(0x03, TRACK_NAMES[index].encode("ascii"))
    if index == PLAYER:
        head += _meta(0x51, TEMPO.to_bytes(3, "big"))
    return head


class SessionRecorder:
    """Collects timestamped messages of both sides; not thread-safe (the loop's thread)."""

    def __init__(self, directory: str | os.PathLike[str], name: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.path = self.directory / (name or f"mididuet-{stamp}.mid")
        self._tracks = (bytearray(), bytearray())  # encoded events after each track's head
        self._last_tick = [0, 0]
        self._start_ns: int | None = None
        self._last_write_ns: int | None = None  # None: nothing recorded yet
        self._dirty = False  # recorded since the last write
        self.messages = 0
        self.closed = False

    @property
    def size(self) -> int:
        """Bytes of events held (what the file will hold, less ~60 bytes of headers)."""
        return len(self._tracks[0]) + len(self._tracks[1])

    def record(self, track: int, msg: mido.Message, t_ns: int) -> None:
        """Keep one message of ``track`` (:data:`PLAYER` or :data:`MIDIDUET`) at ``t_ns``.

        Only encodes (~2 µs); never writes: it runs on the engine's send path.
        """
        if self.closed or msg.type not in _RECORDED_TYPES:
            return
        if self._start_ns is None:
            self._start_ns = self._last_write_ns = t_ns  # the first message starts both clocks
        last = self._last_tick[track]
        tick = max(round((t_ns - self._start_ns) / NS_PER_TICK), last)
        data = self._tracks[track]
        if tick - last < 0x80:  # most deltas (< 66 ms) fit one byte: skip the general encoder
            data.append(tick - last)
        else:
            data += _varlen(tick - last)
        data.extend(msg.bytes())
        self._last_tick[track] = tick
        self._dirty = True
        self.messages += 1

    def due(self, now_ns: int) -> bool:
        """True when something new waits and the last write is :data:`WRITE_EVERY_NS` old."""
        if self.closed or not self._dirty or self._last_write_ns is None:
            return False
        return now_ns - self._last_write_ns >= WRITE_EVERY_NS

    def write_if_due(self, now_ns: int) -> bool:
        """Write the file if :meth:`due`; True when written. Raises ``OSError`` on a disk error
        (the next write is then tried a full interval later, not in a tight loop)."""
        if not self.due(now_ns):
            return False
        self._last_write_ns = now_ns
        self.write()
        return True

    def write(self) -> Path:
        """Write everything recorded so far (atomically). Raises ``OSError`` on a disk error."""
        chunks = [b"MThd", struct.pack(">IHHH", 6, 1, 2, TICKS_PER_BEAT)]
        for index, data in enumerate(self._tracks):
            head = _track_head(index)
            chunks += [b"MTrk", struct.pack(">I", len(head) + len(data) + len(_END_OF_TRACK)),
                       head, data, _END_OF_TRACK]
        tmp = self.path.with_suffix(".mid.tmp")
        with open(tmp, "wb") as out:
            out.writelines(chunks)
        os.replace(tmp, self.path)
        self._dirty = False
        return self.path

    def close(self) -> Path:
        """Write the final file and stop recording. Safe to call more than once."""
        if not self.closed:
            self.write()
            self.closed = True
        return self.path


class Recording(Observer):
    """Records what an engine hears (track 1) and sends (track 2) into a :class:`SessionRecorder`."""

    def __init__(self, recorder: SessionRecorder) -> None:
        self.recorder = recorder

    def heard(self, msg: mido.Message, t_ns: int) -> None:
        self.recorder.record(PLAYER, msg, t_ns)

    def sent(self, msg: mido.Message, t_ns: int) -> None:
        self.recorder.record(MIDIDUET, msg, t_ns)
