"""A port kept by name: opened, lost, found again (a USB cable pulled, a DAW closed).

A :class:`PortLink` remembers what the user asked for (``--in keystation``) and the port
that name matched. The runner looks at the port list every few seconds
(:class:`.listing.PortLister`) and tells each link what it saw: a link whose port
has left the list is *lost*; a lost or missing link whose name matches again is
reopened. Sending to a JACK port that has gone does not raise (rtmidi writes into its
own buffer), so the port list, not ``send``, is how a loss is seen; an ``OSError`` from
``send`` counts as a loss too.

Virtual ports (no name given) are our own and cannot disappear, so they are never watched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import mido

from .api import MidiApi, PortError
from .input import open_input
from .names import match_port
from .output import open_output


class PortLink:
    """One input or output port, by name. Used from the runner's loop only."""

    def __init__(self, api: MidiApi, kind: str, query: str | None,
                 callback: Callable[[Any, Any], Any] | None = None) -> None:
        """``callback``: an input's python-rtmidi callback (raw bytes; :class:`.input.RawInput`)."""
        if kind not in ("input", "output"):
            raise ValueError(f"kind must be 'input' or 'output', got {kind!r}")
        self.api = api
        self.kind = kind
        self.query = query
        self.callback = callback
        self.port: Any = None
        self.lost = False  # was open, then its port left the list (or send failed)

    @property
    def name(self) -> str | None:
        """The name of the port open now, or None."""
        return None if self.port is None else self.port.name

    @property
    def playing(self) -> bool:
        """Open and not lost: messages reach someone."""
        return self.port is not None and not self.lost

    @property
    def watched(self) -> bool:
        """Named ports can come and go; our own virtual ports cannot."""
        return self.query is not None

    def open(self, names: list[str] | None = None) -> None:
        """(Re)open the port the query matches in ``names`` (listed now when None).

        Closes a lost port first. Raises :class:`~.api.PortError`; the link is
        then closed.
        """
        self.close()
        if self.kind == "input":
            assert self.callback is not None, "an input link needs a callback"
            self.port = open_input(self.api, self.query, self.callback, names)
        else:
            self.port = open_output(self.api, self.query, names)
        self.lost = False

    def gone(self, names: list[str]) -> bool:
        """True when this link's port is open, watched, and no longer in ``names``."""
        return self.playing and self.watched and self.name not in names

    def matches(self, names: list[str]) -> bool:
        """True when the query matches exactly one of ``names`` (the port can be opened)."""
        if self.query is None:
            return False
        try:
            match_port(self.query, names, self.kind)
        except PortError:
            return False
        return True

    def send(self, msg: mido.Message) -> None:
        """Send when the port plays; drop the message while it is lost or missing.
        Raises ``OSError`` from the port."""
        if self.port is not None and not self.lost:
            self.port.send(msg)

    def close(self) -> None:
        if self.port is None:
            return
        port, self.port = self.port, None
        port.close()  # an input deregisters its callback first (RawInput.close)
