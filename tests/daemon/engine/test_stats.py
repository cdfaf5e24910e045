"""Stats: bounded histograms with usable percentiles, counters, a one-line summary."""

from __future__ import annotations

import pytest

from mididuet.daemon.engine.stats import Histogram, Stats


def test_percentiles_are_within_the_bucket_resolution() -> None:
    h = Histogram()
    for value in range(1, 10_001):
        h.add(value * 1000)  # 1 µs .. 10 ms
    assert h.count == 10_000
    assert h.percentile(50) == pytest.approx(5_000_000, rel=0.05)
    assert h.percentile(99) == pytest.approx(9_900_000, rel=0.05)
    assert h.percentile(100) == h.max_ns == 10_000_000


def test_the_histogram_never_grows() -> None:
    h = Histogram()
    size = len(h.counts)
    for value in (0, 1, 7, 10**6, 10**12, 10**15, -5):
        h.add(value)
    assert len(h.counts) == size
    assert h.max_ns == 10**15
    assert h.percentile(10) == 0 or h.percentile(10) <= 1


def test_empty_histogram_reports_zero() -> None:
    assert Histogram().percentile(99) == 0.0


def test_summary_line() -> None:
    stats = Stats(clock=lambda: 0)
    stats.notes_in = 3
    stats.answers = 1
    stats.note_sent(100_000, 2_000_000)
    line = stats.summary()
    assert "\n" not in line
    assert "notes in 3 out 1 answers 1" in line
    assert "decision p50 0.100" in line
    assert "lateness p50 2.000" in line
    assert "max 2.000 ms" in line
