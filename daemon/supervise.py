"""The runner's ports: lost and found, the engine's output, and what it says about them.

:class:`PortSupervision` is the half of :class:`daemon.runner.Runner` that keeps the two
ports (:class:`daemon.links.PortLink`, output first, then input) and reports on them:

- Every ``retry_s`` (a chore of the loop) the port list is read through one long-lived
  :class:`daemon.ports.PortLister`: a port that left it is *lost* (logged once, notes
  released, looked for again by name each time); a lost or missing port that is back is
  reopened. A send that raises ``OSError`` counts as a loss too: the engine's
  :meth:`~PortSupervision.send` only notes it and wakes the loop, which acts on it.
- A port missing at start is an error unless ``wait`` is set (the service's default):
  then the runner starts without it and says so in the log and in systemd's STATUS
  (:meth:`~PortSupervision.status`).
- The ``ready`` line is printed once, when both ports first play.

Used from the loop's thread only, apart from the callbacks, which run on rtmidi's and
libjack's threads and only stamp, queue and wake.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING, Any

import mido

from daemon import ports
from daemon.links import PortLink
from daemon.run_options import print_ready

if TYPE_CHECKING:
    from daemon.intake import Intake
    from daemon.midibytes import Parser
    from daemon.run_options import RunOptions

log = logging.getLogger("mididuet.runner")  # the runner's logger: log filters select it by name
WAKE = object()  # put on the queue for the loop: "look at the flags now"


class PortSupervision:
    """Ports kept by name for the runner; the runner's ``__init__`` sets every attribute."""

    options: RunOptions
    intake: Intake
    parser: Parser
    engine: Any
    model: Any
    stats: Any
    api: ports.MidiApi | None
    links: list[PortLink]
    server_gone: bool
    _lister: ports.PortLister | None
    _send_error: OSError | None
    _announced: bool

    # --- rtmidi's and libjack's threads --------------------------------------------------
    def _on_message(self, event: tuple[list[int], float], _data: object) -> None:
        """python-rtmidi's input callback: raw bytes, stamped and queued (or dropped)."""
        self.intake.on_event(event)

    def _on_server_gone(self) -> None:
        self.server_gone = True
        self.intake.wake(WAKE)

    # --- the ports ------------------------------------------------------------------------
    @property
    def out_link(self) -> PortLink:
        return self.links[0]

    @property
    def in_link(self) -> PortLink:
        return self.links[1]

    def close_sysex(self) -> None:
        """End a sysex the input may be holding open (:class:`daemon.ports.SysexCloser`)."""
        if self.in_link.playing:
            self.in_link.port.close_sysex()

    def _announce_if_ready(self) -> None:
        if self._announced or not all(link.playing for link in self.links):
            return
        self._announced = True
        assert self.api is not None
        line = (f"ready: in {self.in_link.name!r}, out {self.out_link.name!r}, api {self.api.name}, "
                f"model {self.model.path.name} ({self.model.info.size} tokens), mode {self.engine.mode}, "
                f"pid {os.getpid()}")
        (self.options.on_ready or print_ready)(line)

    def status(self) -> str:
        """One line for systemd's STATUS (``systemctl --user status mididuet``)."""
        def describe(link: PortLink) -> str:
            label = "in" if link.kind == "input" else "out"
            if link.playing:
                return f"{label} {link.name!r}"
            return f"{label} {link.query!r} {'lost' if link.lost else 'missing'}"

        ports_text = ", ".join(describe(link) for link in self.links)
        waiting = not all(link.playing for link in self.links)
        head = f"waiting for ports: {ports_text}" if waiting else f"playing: {ports_text}"
        return (f"{head}; mode {self.engine.mode}{' (muted)' if self.engine.mute else ''}; "
                f"model {self.model.path.name}")

    def notify_status(self) -> None:
        if self.options.notifier is not None:
            self.options.notifier.status(self.status())

    def stats_line(self) -> str:
        """The engine's summary and the input's: messages taken, dropped, highest backlog."""
        intake = self.intake
        return (f"{self.stats.summary()} | input {intake.accepted} dropped {intake.dropped_total} "
                f"({intake.dropped_text()}) max waiting {intake.peak} malformed {self.parser.malformed}")

    # --- the engine's output ------------------------------------------------------------
    def send(self, msg: mido.Message) -> None:
        try:
            self.out_link.send(msg)
        except OSError as err:
            # Called from inside the engine: note the loss and let the loop handle it.
            if self._send_error is None:
                self._send_error = err
                self.intake.wake(WAKE)

    # --- lost and found ports -------------------------------------------------------------
    def _names(self) -> tuple[list[str], list[str]] | None:
        if self._lister is None:
            return None
        try:
            return self._lister.names()
        except ports.PortError as err:
            log.debug("cannot list ports: %s", err)
            return None

    def _lose(self, link: PortLink, why: str) -> None:
        # Release while the link still sends: a port that failed once may still reach the
        # synth (a transient error), and its note-offs must not be thrown away.
        self.engine.release_all()
        link.lost = True
        log.warning("%s port %r lost (%s): notes released; looking for %r every %g s",
                    link.kind, link.name, why, link.query, self.options.retry_s)
        if link.kind == "input":
            # Keys held when the keyboard went cannot be released now: forget them, or
            # a duet phrase would never end.
            self.engine.listener.reset_phrase()
            self.intake.forget_keys()
        self.notify_status()

    def look_at_ports(self) -> None:
        """Mark ports that left the list as lost; reopen lost and missing ones that are back."""
        if self._send_error is not None:
            err, self._send_error = self._send_error, None
            if self.out_link.playing:
                self._lose(self.out_link, f"send failed: {err}")
        names = self._names()
        if names is None:
            return
        for link in self.links:
            listed = names[0] if link.kind == "input" else names[1]
            if link.gone(listed):
                self._lose(link, "it left the port list")
            elif not link.playing and link.matches(listed):
                was_lost = link.lost
                try:
                    link.open(listed)
                except ports.PortError as err:
                    log.debug("could not reopen %s port %r yet: %s", link.kind, link.query, err)
                    continue
                log.info("%s port %r %s", link.kind, link.name, "back: reconnected" if was_lost else "found")
                if was_lost and link.kind == "output":
                    # Notes sent before the loss may still sound on the device: All Notes Off.
                    self.engine.release_all()
                self.notify_status()
                self._announce_if_ready()
