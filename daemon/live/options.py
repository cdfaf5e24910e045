"""What ``mididuet run`` is asked to do: :class:`RunOptions`, one record, each field declared
once (as :class:`..engine.settings.EngineSettings` is), and :class:`RunHooks`, what the
process wires in besides (systemd, a reload, a benchmark's observer).

Built by :mod:`..service.config` from the defaults, the config file and the flags; read
by the runner (:mod:`.runner`) and replaced on SIGHUP (:mod:`.reload`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.settings import EngineSettings, in_range, positive_seconds, setting
from ..engine.stats import Stats
from ..errors import MididuetError
from ..ports.api import APIS
from .control.paths import SOCKET_NAME, socket_name

LOG_LEVELS = ("debug", "info", "warning", "error")
PORTS_AND_MODEL = "ports and model"
SERVICE = "recording, logs and service"
# Under systemd a summary line every 10 minutes, unless told otherwise.
SERVICE_STATS_S = 600.0


@dataclass
class RunOptions:
    """Everything ``mididuet run`` was asked for, after defaults, the config file and flags."""

    settings: EngineSettings = field(default_factory=EngineSettings)
    in_port: str | None = setting(
        None, "--in", "input port (your keyboard): a case-insensitive part of its name, or re:REGEX", str,
        metavar="NAME", example="keystation", default_text="a virtual port 'mididuet in'", group=PORTS_AND_MODEL)
    out_port: str | None = setting(
        None, "--out", "output port (a synth or DAW), matched like in", str, metavar="NAME", example="fluid",
        default_text="a virtual port 'mididuet out'", group=PORTS_AND_MODEL)
    api: str | None = setting(
        None, "--api", "MIDI API", str, choices=tuple(APIS), example="jack", group=PORTS_AND_MODEL,
        default_text="MIDO_BACKEND's API, else alsa on Linux, coremidi on macOS, winmm on Windows")
    model: Path | None = setting(
        None, "--model", "model bundle (.onnx)", Path, metavar="FILE", example="~/models/mine.onnx",
        default_text="the shipped Chopin model", group=PORTS_AND_MODEL)
    primer: Path | None = setting(
        None, "--primer", "MIDI file whose tokens fill the window before you play (solo starts from it)", Path,
        metavar="FILE.mid", example="~/midi/nocturne.mid", default_text="none", group=PORTS_AND_MODEL)
    record_dir: Path | None = setting(
        None, "--record", "write each session to DIR/mididuet-DATE-TIME.mid", Path, metavar="DIR",
        example="~/mididuet-sessions", default_text="no recording", group=SERVICE)
    stats_interval_s: float | None = setting(
        None, "--stats", "a summary line (notes, answers, decision time and lateness p50/p99) every SECONDS "
        "and at exit", float, check=positive_seconds, metavar="SECONDS", example=600.0, const=10.0,
        default_text=f"every {SERVICE_STATS_S:g} s under systemd, else off", group=SERVICE,
        under_systemd=SERVICE_STATS_S)
    # SCHED_FIFO priority for the loop thread (0: none). Below JACK's own threads (10 and
    # up), above every normal process, so a busy machine does not delay a note.
    rt_priority: int = setting(
        5, "--rt-priority", "real-time (SCHED_FIFO) priority of the playing loop, 0 for none; below JACK's", int,
        check=in_range(0, 99), metavar="N", group=SERVICE)
    wait: bool = setting(
        False, "--wait", "wait for a missing port instead of stopping with an error", example=True,
        default_text="yes under systemd, no in a terminal", group=SERVICE, under_systemd=True)
    retry_s: float = setting(
        2.0, "--retry", "seconds between looks for a lost or missing port", float, check=in_range(0.05, 60.0),
        metavar="SECONDS", group=SERVICE)
    control: str = setting(
        SOCKET_NAME, "--control", "the control socket `mididuet watch` and `status` talk to: a name in "
        "$XDG_RUNTIME_DIR/mididuet/, a path, or off", str, check=socket_name, metavar="NAME", group=SERVICE)
    log_level: str = setting(
        "info", "--log-level", "how much to log on stderr", str, choices=LOG_LEVELS, example="debug", group=SERVICE)
    config_path: Path | None = None  # the config file read, if any (not itself an option)

    def primer_tokens(self) -> list[str] | None:
        """The primer file's tokens, or None without one. Raises ``MididuetError``."""
        if self.primer is None:
            return None
        from ..music.midi_reader import MidiReadError, read_tokens

        try:
            return read_tokens(self.primer)
        except (MidiReadError, OSError) as err:
            raise MididuetError(f"primer {self.primer}: {err}") from err


@dataclass
class RunHooks:
    """What the process wires into a run besides its options; every one may be left out."""

    # Called once, when both ports first play and the model is loaded (default: a line on stderr).
    on_ready: Callable[[str], None] | None = None
    notifier: Any = None  # a ..service.notify.Notifier when systemd listens
    # SIGHUP: the options to switch to (the config re-read); raises MididuetError.
    reload: Callable[[], RunOptions] | None = None
    # A Stats (or subclass) to use instead of a new one: benchmarks observe each note through it.
    stats: Stats | None = None

    def ready(self, line: str) -> None:
        (self.on_ready or print_ready)(line)


def print_ready(line: str) -> None:
    """The default readiness hook: one line on stderr (tests and scripts wait for it)."""
    print(f"mididuet: {line}", file=sys.stderr, flush=True)
