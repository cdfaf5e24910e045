"""Measure the engine: decision time and lateness histograms, and counters.

Histograms have a fixed number of log-spaced buckets (:data:`SUB_BUCKETS` per power of
two, from 1 ns to about 18 minutes), so they never grow and a percentile is exact to
within ~4.5 %. The maximum is kept exactly.

``clock`` is the time source used to stamp "note handed to send"; the engine reads it
only through this object, so a simulation can inject its fake clock.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from ..music.units import NS_PER_MS

SUB_BUCKETS = 16  # per power of two: ~4.4 % relative resolution
OCTAVES = 40  # 2**40 ns ~ 18 minutes: anything longer lands in the last bucket


class Histogram:
    """Counts of non-negative nanosecond values in fixed log-spaced buckets."""

    def __init__(self) -> None:
        self.counts = [0] * (OCTAVES * SUB_BUCKETS + 1)
        self.count = 0
        self.max_ns = 0

    @staticmethod
    def _bucket(value_ns: int) -> int:
        if value_ns <= 1:
            return 0
        return min(int(math.log2(value_ns) * SUB_BUCKETS) + 1, OCTAVES * SUB_BUCKETS)

    @staticmethod
    def _upper(bucket: int) -> float:
        return 1.0 if bucket == 0 else 2.0 ** (bucket / SUB_BUCKETS)

    def add(self, value_ns: int) -> None:
        value_ns = max(int(value_ns), 0)  # a clock read before the deadline counts as on time
        self.counts[self._bucket(value_ns)] += 1
        self.count += 1
        if value_ns > self.max_ns:
            self.max_ns = value_ns

    def percentile(self, q: float) -> float:
        """The value (ns) at or below which ``q`` percent of the samples fall (0 when empty)."""
        if not self.count:
            return 0.0
        rank = max(1, math.ceil(self.count * q / 100.0))
        seen = 0
        for bucket, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(self._upper(bucket), float(self.max_ns))
        return float(self.max_ns)

    def copy(self) -> Histogram:
        """A snapshot (another thread may then read it while this one goes on counting)."""
        snapshot = Histogram()
        snapshot.counts, snapshot.count, snapshot.max_ns = self.counts.copy(), self.count, self.max_ns
        return snapshot

    def since(self, earlier: Histogram) -> Histogram:
        """The samples added after ``earlier`` (a :meth:`copy` of this one); its maximum is
        the top of its highest bucket, at most this one's maximum."""
        recent = Histogram()
        recent.counts = [now - then for now, then in zip(self.counts, earlier.counts, strict=True)]
        recent.count = self.count - earlier.count
        top = max((b for b, n in enumerate(recent.counts) if n), default=None)
        recent.max_ns = 0 if top is None else int(min(self._upper(top), self.max_ns))
        return recent


class Stats:
    """What the engine did and how fast. Updated from the engine's one thread."""

    def __init__(self, clock: Callable[[], int] = time.monotonic_ns) -> None:
        self.clock = clock
        self.decision = Histogram()
        self.lateness = Histogram()
        self.notes_in = 0
        self.notes_out = 0
        self.answers = 0

    def note_sent(self, decision_ns: int, lateness_ns: int) -> None:
        self.notes_out += 1
        self.decision.add(decision_ns)
        self.lateness.add(lateness_ns)

    def summary(self) -> str:
        """One line: counts, then p50/p99/max of decision time and lateness in ms."""
        def fmt(h: Histogram) -> str:
            return (f"p50 {h.percentile(50) / NS_PER_MS:.3f} p99 {h.percentile(99) / NS_PER_MS:.3f} "
                    f"max {h.max_ns / NS_PER_MS:.3f} ms")
        return (f"notes in {self.notes_in} out {self.notes_out} answers {self.answers} | "
                f"decision {fmt(self.decision)} | lateness {fmt(self.lateness)}")
