"""Who else hears what the engine hears and plays: the recorder, the tests, the demo.

An :class:`Observer` is told, on the engine's own thread and in its playing path, of each
player message it takes in, each message it sends, each token it decides and plays, and
each live control that changes. Overrides must be quick: no I/O, no locks (the recorder
only encodes into memory, the control socket's hub only appends to a deque).
"""

from __future__ import annotations

import mido


class Observer:
    """Does nothing by default; a subclass overrides what it wants to know."""

    def heard(self, msg: mido.Message, t_ns: int) -> None:
        """A player message the engine took in (after the input-channel filter)."""

    def sent(self, msg: mido.Message, t_ns: int) -> None:
        """A message the engine sent: its answer's notes, thru notes, releases."""

    def played(self, token: str, t_ns: int) -> None:
        """A token the engine played (its notes have just been sent)."""

    def decided(self, token: str, due_ns: int | None, t_ns: int) -> None:
        """The next token, decided at ``t_ns`` ahead of its deadline ``due_ns`` (None: the
        performance has not started yet); it may still be dropped and decided again."""

    def changed(self, what: str, value: object, t_ns: int) -> None:
        """A live control changed (``mode``, ``temperature``, ``mute``), by a CC or a client."""


class TokenLog(Observer):
    """The tokens the engine plays, in order (generate, the demo, tests)."""

    def __init__(self) -> None:
        self.tokens: list[str] = []

    def played(self, token: str, t_ns: int) -> None:
        self.tokens.append(token)
