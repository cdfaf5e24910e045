"""Record a session to a standard MIDI file: the player on track 1, mididuet on track 2.

The file is named ``mididuet-YYYYmmdd-HHMMSS.mid`` (local time at start) in the directory
given. It is written atomically (a temporary file renamed over it) on :meth:`close`, and
again every :data:`WRITE_EVERY_NS` of recorded time, so a process killed without
warning still leaves the last complete version, and a SIGTERM handled by the runner
(which calls ``close``) leaves everything.

Times are kept in ticks at 120 BPM and 960 ticks per beat (~0.52 ms per tick), finer
than MIDI's own transport.
"""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path

import mido

TICKS_PER_BEAT = 960
TEMPO = 500_000  # µs per beat: 120 BPM
NS_PER_TICK = TEMPO * 1000 / TICKS_PER_BEAT
WRITE_EVERY_NS = 10_000_000_000
PLAYER, MIDIDUET = 0, 1
_RECORDED_TYPES = frozenset({"note_on", "note_off", "control_change", "pitchwheel", "aftertouch",
                             "polytouch", "program_change"})


class SessionRecorder:
    """Collects timestamped messages of both sides; not thread-safe (the engine's thread)."""

    def __init__(self, directory: str | os.PathLike[str], name: str | None = None) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
        self.path = self.directory / (name or f"mididuet-{stamp}.mid")
        self._events: tuple[list[tuple[int, mido.Message]], list[tuple[int, mido.Message]]] = ([], [])
        self._start_ns: int | None = None
        self._last_write_ns: int | None = None
        self.closed = False

    def record(self, track: int, msg: mido.Message, t_ns: int) -> None:
        """Keep one message of ``track`` (:data:`PLAYER` or :data:`MIDIDUET`) at ``t_ns``."""
        if self.closed or msg.type not in _RECORDED_TYPES:
            return
        if self._start_ns is None:
            self._start_ns = self._last_write_ns = t_ns
        self._events[track].append((t_ns, msg))
        if t_ns - self._last_write_ns >= WRITE_EVERY_NS:
            self._last_write_ns = t_ns
            self.write()

    def write(self) -> Path:
        """Write everything recorded so far (atomically). Raises ``OSError`` on a disk error."""
        midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
        start = self._start_ns or 0
        for index, (name, events) in enumerate(zip(("player", "mididuet"), self._events, strict=True)):
            track = mido.MidiTrack()
            track.append(mido.MetaMessage("track_name", name=name, time=0))
            if index == 0:
                track.append(mido.MetaMessage("set_tempo", tempo=TEMPO, time=0))
            previous = 0
            # Sort by time: messages arrive in order, but be safe against equal stamps from two callers.
            for t_ns, msg in sorted(events, key=lambda e: e[0]):
                tick = max(round((t_ns - start) / NS_PER_TICK), previous)
                track.append(msg.copy(time=tick - previous))
                previous = tick
            track.append(mido.MetaMessage("end_of_track", time=0))
            midi.tracks.append(track)
        tmp = self.path.with_suffix(".mid.tmp")
        midi.save(tmp)
        os.replace(tmp, self.path)
        return self.path

    def close(self) -> Path:
        """Write the final file and stop recording. Safe to call more than once."""
        if not self.closed:
            self.write()
            self.closed = True
        return self.path
