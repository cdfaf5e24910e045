"""How the playing loop should wait out the last stretch before a deadline.

The loop (SCHED_FIFO 5, as ``mididuet run`` asks) waits for 400 deadlines 1.5 ms ahead,
sleeping the first 0.5 ms and waiting out the last 1 ms in one of four ways (the daemon
waits out 2 ms; 1 ms keeps this benchmark short). Meanwhile a
higher-priority thread (SCHED_FIFO 10) wakes every 0.2 ms and needs the GIL, as rtmidi's
input callback does on JACK's thread. For each way:

- how late the loop sees its deadline (p50, p99);
- how late the other thread gets the GIL after its timer (p50, p99, max): a way that
  keeps the GIL would hold up every input message, and with them JACK's cycle.

Baseline, in the same run: ``sleep``, the loop asleep until the deadline. The others:
``yield`` (``os.sched_yield()`` in a loop), ``sleep0`` (``time.sleep(0)`` in a loop:
what the daemon does, ``mididuet.daemon.live.runner``), ``pass`` (a bare loop, which keeps the GIL
until CPython's switch interval takes it away).

Run as root or with an rtprio limit: ``.venv/bin/python benchmarks/bench_wait.py``
(about 10 s). Without real-time permission it measures the ordinary scheduler and says so.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

DEADLINES = 400
AHEAD_NS = 1_500_000
ASLEEP_S = 0.0005
OTHER_EVERY_S = 0.0002
SWITCH_INTERVAL_S = 0.0005  # the daemon's (mididuet.daemon.live.runner.SWITCH_INTERVAL_S)

_now = time.monotonic_ns


def _realtime(priority: int) -> bool:
    try:
        os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
        return True
    except (PermissionError, AttributeError, OSError):
        return False


def _spin(step: Callable[[], object]) -> Callable[[int], None]:
    def wait(deadline: int) -> None:
        while _now() < deadline:
            step()
    return wait


def _asleep(deadline: int) -> None:
    time.sleep(max(deadline - _now(), 0) / 1e9)


WAYS: dict[str, Callable[[int], None]] = {
    "sleep": _asleep,
    "yield": _spin(os.sched_yield),
    "sleep0": _spin(lambda: time.sleep(0)),
    "pass": _spin(lambda: None),
}


def pct(values: list[int], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(int(len(ordered) * q / 100), len(ordered) - 1)] / 1000  # µs


def measure(wait: Callable[[int], None]) -> dict[str, float]:
    lags: list[int] = []
    stop = threading.Event()

    def other() -> None:
        _realtime(10)
        while not stop.is_set():
            due = _now() + int(OTHER_EVERY_S * 1e9)
            time.sleep(OTHER_EVERY_S)
            lags.append(_now() - due)  # its timer's lateness plus its wait for the GIL

    thread = threading.Thread(target=other)
    thread.start()
    late = []
    for _ in range(DEADLINES):
        deadline = _now() + AHEAD_NS
        time.sleep(ASLEEP_S)
        wait(deadline)
        late.append(_now() - deadline)
    stop.set()
    thread.join()
    return {"late_p50": pct(late, 50), "late_p99": pct(late, 99),
            "other_p50": pct(lags, 50), "other_p99": pct(lags, 99), "other_max": max(lags) / 1000}


def main() -> int:
    realtime = _realtime(5)
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    print(f"loop {'SCHED_FIFO 5' if realtime else 'without real-time priority (no permission)'}; "
          f"{DEADLINES} deadlines per way; the other thread wants the GIL every {OTHER_EVERY_S * 1e6:.0f} µs")
    results = {name: measure(wait) for name, wait in WAYS.items()}
    base = results["sleep"]
    print("| way | deadline seen late p50 / p99 (µs) | other thread's GIL late p50 / p99 / max (µs) "
          "| other p99 ÷ asleep |")
    print("|---|---|---|---|")
    for name, r in results.items():
        print(f"| {name} | {r['late_p50']:.0f} / {r['late_p99']:.0f} | {r['other_p50']:.0f} / "
              f"{r['other_p99']:.0f} / {r['other_max']:.0f} | {r['other_p99'] / base['other_p99']:.2f}x |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
