"""The two ports, kept by name: opened, lost and found again, and what to say about them.

A :class:`PortSupervisor` holds the output and the input (:class:`..ports.link.PortLink`,
output first) and one long-lived :class:`..ports.listing.PortLister`:

- :meth:`~PortSupervisor.look`, a chore of the loop every ``retry_s``, reads the port
  list: a port that left it is *lost* (logged once; the caller's notes are released
  while the port may still reach the synth, then it is looked for again by name each
  time); a lost or missing port that is back is reopened. A send that raised ``OSError``
  counts as a loss too: :meth:`~PortSupervisor.send` only notes it and wakes the loop.
- :meth:`~PortSupervisor.open` at start: a port missing is an error unless ``wait`` is
  set (the service's default); then the run starts without it and says so.

Used from the loop's thread only, apart from the input callback, which runs on rtmidi's
thread and only stamps and queues.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mido

from ..ports.api import MidiApi, PortError
from ..ports.link import PortLink
from ..ports.listing import PortLister

log = logging.getLogger("mididuet.runner")  # the runner's logger: log filters select it by name


@dataclass(frozen=True)
class PortChange:
    """What :meth:`PortSupervisor.look` saw happen to a port."""

    link: PortLink
    event: str  # "lost", "found" (first opened) or "back" (reopened after a loss)


class PortSupervisor:
    """The output and the input port, by name. Not thread-safe: the loop's thread."""

    def __init__(self, api: MidiApi, in_query: str | None, out_query: str | None,
                 on_message: Callable[[Any, Any], Any], wake: Callable[[], None], retry_s: float,
                 lister: PortLister | None) -> None:
        """``on_message``: the input's python-rtmidi callback; ``wake``: wakes the loop
        (a send failed); ``retry_s``: said in the log when a port is lost; ``lister``:
        where the port list is read (None: ports are never looked for again)."""
        self.api = api
        self.links = [PortLink(api, "output", out_query), PortLink(api, "input", in_query, on_message)]
        self.retry_s = retry_s
        self._wake = wake
        self._lister = lister
        self._send_error: OSError | None = None

    @property
    def out_link(self) -> PortLink:
        return self.links[0]

    @property
    def in_link(self) -> PortLink:
        return self.links[1]

    @property
    def playing(self) -> bool:
        """Both ports open and not lost."""
        return all(link.playing for link in self.links)

    @property
    def send_failed(self) -> bool:
        return self._send_error is not None

    def open(self, wait: bool) -> None:
        """Open both ports, output first (messages arriving once the input is open wait in
        the queue, stamped). Raises :class:`PortError` for a missing port unless ``wait``."""
        names = self._names()
        for link, listed in zip(self.links, (names[1], names[0]) if names else (None, None), strict=True):
            try:
                link.open(listed)
            except PortError as err:
                if not (wait and link.watched):
                    raise
                log.warning("waiting for %s port %r, looking every %g s: %s", link.kind, link.query,
                            self.retry_s, err)

    def send(self, msg: mido.Message) -> None:
        """The engine's output. A failing port is noted and the loop woken; never raises."""
        try:
            self.out_link.send(msg)
        except OSError as err:
            if self._send_error is None:
                self._send_error = err
                self._wake()

    def close_sysex(self) -> None:
        """End a sysex the input may be holding open (:class:`..ports.input.SysexCloser`)."""
        if self.in_link.playing:
            self.in_link.port.close_sysex()

    def look(self, release_notes: Callable[[], None]) -> list[PortChange]:
        """Mark ports that left the list (or whose send failed) as lost, reopen lost and
        missing ones that are back; what happened, in order.

        ``release_notes`` is called before a port is marked lost, while it still sends (a
        port that failed once may still reach the synth), and after a lost output is back
        (notes sent before the loss may still sound there)."""
        changes: list[PortChange] = []
        if self._send_error is not None:
            err, self._send_error = self._send_error, None
            if self.out_link.playing:
                changes.append(self._lose(self.out_link, f"send failed: {err}", release_notes))
        names = self._names()
        if names is None:
            return changes
        for link in self.links:
            listed = names[0] if link.kind == "input" else names[1]
            if link.gone(listed):
                changes.append(self._lose(link, "it left the port list", release_notes))
            elif not link.playing and link.matches(listed):
                was_lost = link.lost
                try:
                    link.open(listed)
                except PortError as err:
                    log.debug("could not reopen %s port %r yet: %s", link.kind, link.query, err)
                    continue
                log.info("%s port %r %s", link.kind, link.name, "back: reconnected" if was_lost else "found")
                if was_lost and link.kind == "output":
                    release_notes()
                changes.append(PortChange(link, "back" if was_lost else "found"))
        return changes

    def describe(self) -> str:
        """The ports for systemd's STATUS: ``playing: in 'x', out 'y'`` or ``waiting for ports: ...``."""
        def one(link: PortLink) -> str:
            label = "in" if link.kind == "input" else "out"
            if link.playing:
                return f"{label} {link.name!r}"
            return f"{label} {link.query!r} {'lost' if link.lost else 'missing'}"

        ports_text = ", ".join(one(link) for link in self.links)
        return f"playing: {ports_text}" if self.playing else f"waiting for ports: {ports_text}"

    def close(self) -> None:
        """Close the input first (nothing more comes in), then the output and the lister."""
        for link in reversed(self.links):
            link.close()
        if self._lister is not None:
            self._lister.close()
            self._lister = None

    def _names(self) -> tuple[list[str], list[str]] | None:
        if self._lister is None:
            return None
        try:
            return self._lister.names()
        except PortError as err:
            log.debug("cannot list ports: %s", err)
            return None

    def _lose(self, link: PortLink, why: str, release_notes: Callable[[], None]) -> PortChange:
        release_notes()
        link.lost = True
        log.warning("%s port %r lost (%s): notes released; looking for %r every %g s",
                    link.kind, link.name, why, link.query, self.retry_s)
        return PortChange(link, "lost")
