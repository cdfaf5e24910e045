"""What ``mididuet run`` is asked to do: :class:`RunOptions`, and the default readiness hook.

Built by :mod:`daemon.service` from the config file and flags, read by the runner
(:mod:`daemon.runner`) and replaced on SIGHUP (:mod:`daemon.reload`).
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from daemon.settings import EngineSettings


@dataclass
class RunOptions:
    """Everything ``mididuet run`` needs besides the engine settings."""

    settings: EngineSettings = field(default_factory=EngineSettings)
    model: Path | None = None  # None: the shipped model
    primer: list[str] | None = None
    in_port: str | None = None  # None: a virtual "mididuet in"
    out_port: str | None = None
    api: str | None = None
    record_dir: Path | None = None
    stats_interval_s: float | None = None  # None: no periodic stats
    # SCHED_FIFO priority for the loop thread (0: none). Below JACK's own threads (10 and
    # up), above every normal process, so a busy machine does not delay a note.
    rt_priority: int = 5
    # A Stats (or subclass) to use instead of a new one: benchmarks observe each note through it.
    stats: Any = None
    # Called once, when both ports are first open and the model is loaded.
    on_ready: Callable[[str], None] | None = None
    wait: bool = False  # a named port missing at start: wait for it instead of failing
    retry_s: float = 2.0  # how often the port list is read (lost and missing ports)
    notifier: Any = None  # a daemon.notify.Notifier when systemd listens
    # SIGHUP: returns the options to switch to (config re-read); raises MididuetError.
    reload: Callable[[], RunOptions] | None = None
    log_level: str | None = None


def print_ready(line: str) -> None:
    """The default readiness hook: one line on stderr (tests and scripts wait for it)."""
    print(f"mididuet: {line}", file=sys.stderr, flush=True)
