"""Read a directory of MIDI files into token sequences, one per piece.

Two readers: ``mido`` (the default: ``mididuet.daemon.music.midi_reader``, a few seconds
for the 48 Chopin pieces), which also keeps how each token was played (onset, sounding
length, velocity, register: :class:`~mididuet.daemon.music.midi_reader.TokenRecord`), and
``music21`` (the reference notebook's reading, ~100 s, tokens only, kept so the two can be
compared). Results are cached on disk by the file's content hash, so a second run reads
nothing. Bad files are reported by name and skipped; they never stop a run.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mididuet.daemon.errors import MididuetError
from mididuet.daemon.music.midi_reader import MidiReadError, TokenRecord, read_records

MIDI_SUFFIXES = (".mid", ".midi")
READERS = ("mido", "music21")
# Bump when a reader's output changes, so stale cache entries are not reused.
READER_VERSIONS = {"mido": 3, "music21": 1}  # mido 3: records with the pedal and the seconds
DEFAULT_CORPUS = Path("..") / "shared" / "data" / "piano-midi" / "midis" / "Chopin"


class CorpusError(MididuetError):
    """No usable music where some was expected (a missing or empty corpus)."""


@dataclass(frozen=True)
class Piece:
    name: str  # path relative to the corpus directory, stable across machines
    sha256: str
    tokens: tuple[str, ...]
    records: tuple[TokenRecord, ...] | None = None  # how each token was played (the mido reader)


@dataclass
class Corpus:
    root: Path
    pieces: list[Piece]
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason)

    @property
    def sha256(self) -> str:
        """One hash for the whole corpus: the pieces' names and contents."""
        digest = hashlib.sha256()
        for piece in sorted(self.pieces, key=lambda p: p.name):
            digest.update(f"{piece.name}\0{piece.sha256}\n".encode())
        return digest.hexdigest()

    @property
    def token_count(self) -> int:
        return sum(len(p.tokens) for p in self.pieces)


def default_data_dir() -> Path:
    """``$MIDIDUET_DATA`` if set, else the shared Chopin set beside the project."""
    env = os.environ.get("MIDIDUET_DATA")
    return Path(env) if env else DEFAULT_CORPUS


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mididuet" / "tokens"


def find_midi_files(root: Path) -> list[Path]:
    """MIDI files below ``root`` in a stable order; a missing root is a :class:`CorpusError`."""
    if not root.exists():
        raise CorpusError(f"corpus directory not found: {root} (set --data or MIDIDUET_DATA)")
    if root.is_file():
        return [root]
    found = []
    # os.walk does not follow directory symlinks, so a symlink loop cannot trap it.
    for dirpath, _dirs, files in os.walk(root):
        found += [Path(dirpath) / f for f in files if f.lower().endswith(MIDI_SUFFIXES)]
    return sorted(found)


def _read_music21(path: Path) -> list[str]:
    """The reference notebook's reading: the piano parts' notes and chords, via music21."""
    from music21 import chord, converter, instrument, note

    score = converter.parse(str(path))
    tokens: list[str] = []
    for part in instrument.partitionByInstrument(score).parts:
        if "Piano" not in str(part):
            continue
        for element in part.recurse():
            if isinstance(element, note.Note):
                tokens.append(str(element.pitch))
            elif isinstance(element, chord.Chord):
                tokens.append(".".join(str(pc) for pc in element.normalOrder))
    return tokens


def _read_one(args: tuple[str, str]) -> tuple[list[Any] | None, str | None]:
    """A file's tokens (music21) or its records as JSON rows (mido), or why not."""
    path, reader = args
    try:
        tokens = [r.as_row() for r in read_records(path)] if reader == "mido" else _read_music21(Path(path))
    except MidiReadError as err:
        return None, str(err)
    except Exception as err:  # music21 and mido raise many types on damaged data
        return None, f"{Path(path).name}: unreadable ({type(err).__name__}: {err})"
    return tokens, None


class NotAFileError(OSError):
    """A name ending in .mid that is not a regular file (a FIFO, a device, a socket)."""


def _file_hash(path: Path) -> str:
    """The sha256 of a regular file's bytes. Raises ``OSError`` (:class:`NotAFileError`
    for a FIFO or a device, which would otherwise block the read forever or never end).

    Opened with ``O_NONBLOCK`` and checked with ``fstat`` on that descriptor, so a FIFO is
    refused without waiting for a writer and a file swapped after a ``stat`` cannot slip by.
    """
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    with os.fdopen(fd, "rb") as file:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
            raise NotAFileError(f"{kind}, not a MIDI file")
        return hashlib.file_digest(file, "sha256").hexdigest()


def read_corpus(
    root: Path,
    reader: str = "mido",
    *,
    workers: int | None = None,
    use_cache: bool = True,
    progress: Callable[[Iterable], Iterable] | None = None,
    warn: Callable[[str], None] | None = None,
) -> Corpus:
    """Read every MIDI file below ``root`` into tokens.

    Unreadable files and files without notes are skipped and reported through ``warn``
    (default: stderr). Raises :class:`CorpusError` when no file is usable.
    """
    if reader not in READERS:
        raise ValueError(f"reader must be one of {', '.join(READERS)}, got {reader!r}")
    warn = warn or (lambda message: print(f"warning: {message}", file=sys.stderr))
    root = Path(root)
    files = find_midi_files(root)
    if not files:
        raise CorpusError(f"no MIDI files (*.mid, *.midi) found in {root}")

    skipped: list[tuple[str, str]] = []
    hashes: dict[Path, str] = {}
    for path in files:
        try:
            hashes[path] = _file_hash(path)
        except OSError as err:
            skipped.append((_relative(path, root), f"cannot read file ({err.strerror or err})"))
    cache = cache_dir() / f"{reader}-v{READER_VERSIONS[reader]}"
    results: dict[Path, list[str]] = {}
    to_read: list[Path] = []
    for path, digest in hashes.items():
        cached = cache / f"{digest}.json"
        if use_cache and cached.is_file():
            try:
                data = json.loads(cached.read_text())
                _piece("", digest, data, reader)  # a damaged entry of the right JSON is refused here
                results[path] = data
                continue
            except (OSError, ValueError, TypeError):
                pass  # a damaged cache entry is just re-read
        to_read.append(path)

    if to_read:
        jobs = [(str(p), reader) for p in to_read]
        workers = workers or min(len(jobs), os.cpu_count() or 1)
        # Parallel reading pays off only for music21 (seconds per file) or large sets;
        # a process pool costs more than mido needs for a handful of files.
        if workers > 1 and (reader == "music21" or len(jobs) > 16):
            with ProcessPoolExecutor(max_workers=workers) as pool:
                outcomes: Iterable = pool.map(_read_one, jobs, chunksize=1 if reader == "music21" else 4)
                outcomes = progress(outcomes) if progress else outcomes
                outcomes = list(outcomes)
        else:
            iterator: Iterable = map(_read_one, jobs)
            outcomes = list(progress(iterator) if progress else iterator)
        for path, (tokens, error) in zip(to_read, outcomes, strict=True):
            if error is not None:
                skipped.append((_relative(path, root), error))
                continue
            results[path] = tokens or []
            if use_cache:
                _write_cache(cache / f"{hashes[path]}.json", tokens or [])

    pieces = []
    for path in files:
        if path not in results:
            continue
        if not results[path]:
            skipped.append((_relative(path, root), "no notes"))
            continue
        pieces.append(_piece(_relative(path, root), hashes[path], results[path], reader))
    for name, reason in skipped:
        warn(f"skipped {name}: {reason}")
    if skipped:
        warn(f"skipped {len(skipped)} of {len(files)} files")
    if not pieces:
        raise CorpusError(f"no usable MIDI file in {root}: all {len(files)} files were skipped")
    return Corpus(root, pieces, skipped)


def _piece(name: str, sha256: str, data: list[Any], reader: str) -> Piece:
    if reader == "music21":
        return Piece(name, sha256, tuple(data))
    records = tuple(TokenRecord.from_row(row) for row in data)
    return Piece(name, sha256, tuple(r.token for r in records), records)


def _relative(path: Path, root: Path) -> str:
    return path.name if root.is_file() else str(path.relative_to(root))


def _write_cache(path: Path, tokens: list[Any]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(json.dumps(tokens))
        tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    except OSError:
        pass  # the cache is an optimisation; a read-only home must not stop training
