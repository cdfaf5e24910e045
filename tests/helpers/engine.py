"""Helpers for driving an engine in tests: a sink that collects what it sends."""

from __future__ import annotations

import mido


class Sink:
    """Collects what the engine sends, stamped with the test's clock (``now``)."""

    def __init__(self) -> None:
        self.now = 0
        self.sent: list[tuple[int, mido.Message]] = []

    def __call__(self, msg: mido.Message) -> None:
        self.sent.append((self.now, msg))

    def note_ons(self) -> list[tuple[int, mido.Message]]:
        return [(t, m) for t, m in self.sent if m.type == "note_on" and m.velocity > 0]
