"""MIDI round trip through PipeWire's JACK against jackd2, at the same period, in one run.

For each server (a private ``jackd --realtime -d dummy -p P``, then a private headless
``pipewire`` whose clients ask for quantum P, as ``pw-jack -p P`` does) and each path:

- **direct**: a measuring client sends note-ons 10 ms apart to an echo client (another
  process), which sends each one straight back: two JACK hops, no mididuet;
- **thru**: the same note-ons through ``mididuet run --thru`` (two hops: into mididuet,
  out of it), with a phrase gap longer than the run so that it never answers.

The measuring client stamps each send and each arrival with CLOCK_MONOTONIC and prints
p50/p99/max of the round trip in ms and in periods, and lost messages. The ratios are
PipeWire ÷ jackd2 for the same path in the same run; "mididuet adds" is thru − direct.
Every client runs in a child process with the server's environment (PipeWire's needs a
python-rtmidi built against the system's libjack: ``make rtmidi-system``, done here).

Run: ``.venv/bin/python benchmarks/bench_pipewire.py [--periods 64 256] [--count 500]``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # for tests.helpers (mididuet itself is installed)

from tests.helpers.bundles import make_bundle  # noqa: E402
from tests.helpers.jack import DaemonProcess, JackServer  # noqa: E402
from tests.helpers.pipewire import PipeWireServer, system_rtmidi  # noqa: E402

MEASURE, ECHO = "bench-measure", "bench-echo"
SPACING_S = 0.010
RATE = 48000


def jack_client(kind: str, name: str) -> Any:
    import rtmidi

    cls = rtmidi.MidiIn if kind == "in" else rtmidi.MidiOut
    return cls(rtapi=rtmidi.API_UNIX_JACK, name=name)


def connect(client: Any, port: str, as_name: str) -> None:
    names = client.get_ports()
    client.open_port(names.index(port), as_name)


def worker_echo() -> int:
    """Echo every message from the measuring client's output straight back to its input."""
    out = jack_client("out", f"{ECHO}-out")
    connect(out, f"{MEASURE}-in:in", "out")
    inp = jack_client("in", f"{ECHO}-in")
    inp.set_callback(lambda event, _data: out.send_message(event[0]))
    connect(inp, f"{MEASURE}-out:out", "in")
    print("ready", flush=True)
    sys.stdin.readline()
    inp.close_port()
    time.sleep(0.05)
    inp.cancel_callback()
    out.close_port()
    return 0


def worker_measure(count: int) -> int:
    """Open bench-measure-out:out and bench-measure-in:in, say "open", wait for "go", send, report JSON."""
    arrivals: list[tuple[int, list[int]]] = []
    inp = jack_client("in", f"{MEASURE}-in")
    inp.set_callback(lambda event, _data: arrivals.append((time.monotonic_ns(), event[0])))
    inp.open_virtual_port("in")
    out = jack_client("out", f"{MEASURE}-out")
    out.open_virtual_port("out")
    print("open", flush=True)
    sys.stdin.readline()
    # The path is up once a message comes back: PipeWire makes its links a few cycles after
    # the ports connect, and what is sent before that is lost to setup, not to the server.
    deadline = time.monotonic() + 5
    while not arrivals and time.monotonic() < deadline:
        out.send_message([0xB0, 20, 0])
        time.sleep(0.02)
    time.sleep(0.1)
    arrivals.clear()
    sent: dict[tuple[int, int], int] = {}
    start = time.monotonic()
    for i in range(count):
        note, velocity = 30 + i % 60, 1 + i // 60  # a unique pair per message
        sent[(note, velocity)] = time.monotonic_ns()
        out.send_message([0x90, note, velocity])
        time.sleep(0.004)
        out.send_message([0x80, note, 0])
        time.sleep(max(0.0, start + (i + 1) * SPACING_S - time.monotonic()))
    time.sleep(0.3)
    first: dict[tuple[int, int], int] = {}
    duplicates = 0
    for t, m in list(arrivals):
        key = (m[1], m[2]) if len(m) == 3 and m[0] & 0xF0 == 0x90 else None
        if key in sent:
            duplicates += key in first
            first.setdefault(key, t - sent[key])
    print(json.dumps({"trips_ns": list(first.values()), "sent": count, "duplicates": duplicates}), flush=True)
    inp.close_port()
    out.close_port()
    return 0


class Worker:
    def __init__(self, args: list[str], env: dict[str, str], wrapper: list[str] | None = None) -> None:
        self.process = subprocess.Popen([*(wrapper or []), sys.executable, __file__, *args], cwd=ROOT,
                                        env={**os.environ, **env}, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.DEVNULL, text=True)

    def say(self, line: str = "") -> str:
        assert self.process.stdin is not None and self.process.stdout is not None
        if line:
            self.process.stdin.write(line + "\n")
            self.process.stdin.flush()
        return self.process.stdout.readline().strip()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.say("quit")
                self.process.wait(timeout=10)
            except (BrokenPipeError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def measure(path: str, env: dict[str, str], daemon_env: dict[str, str], wrapper: list[str], model: Path,
            count: int) -> dict[str, Any]:
    """One path on one server: the clients get ``env``, mididuet ``daemon_env`` behind ``wrapper``."""
    meter = Worker(["--worker", "measure", "--count", str(count)], env)
    other: Worker | DaemonProcess | None = None
    try:
        assert meter.say() == "open"
        if path == "direct":
            other = Worker(["--worker", "echo"], env)
            assert other.say() == "ready"
        else:
            other = DaemonProcess(["--model", str(model), "--api", "jack", "--in", f"{MEASURE}-out:out", "--out",
                                   f"{MEASURE}-in:in", "--thru", "--phrase-gap", "10000"], daemon_env, wrapper=wrapper)
            other.wait_ready()
        report = json.loads(meter.say("go"))
    finally:
        if isinstance(other, Worker):
            other.close()
        elif other is not None:
            other.stop()
        meter.close()
    return report


def summary(trips_ns: list[int], sent: int, duplicates: int, period: int) -> dict[str, float]:
    ms = np.asarray(trips_ns, dtype=np.float64) / 1e6
    period_ms = period / RATE * 1000
    p50, p99, top = (float(np.percentile(ms, 50)), float(np.percentile(ms, 99)), float(ms.max())) if len(ms) else (
        float("nan"),) * 3
    return {"p50": p50, "p99": p99, "max": top, "p50_periods": p50 / period_ms, "p99_periods": p99 / period_ms,
            "lost": sent - len(ms), "duplicates": duplicates}


def run_period(period: int, count: int, model: Path, rtmidi_dir: Path) -> dict[tuple[str, str], dict[str, float]]:
    results: dict[tuple[str, str], dict[str, float]] = {}
    jack = JackServer(name=f"bench-pw-{os.getpid()}", period=period)
    jack.start()
    try:
        for path in ("direct", "thru"):
            report = measure(path, jack.env, jack.env, [], model, count)
            results[("jackd2", path)] = summary(report["trips_ns"], report["sent"], report["duplicates"], period)
    finally:
        jack.stop()
    pipewire = PipeWireServer(quantum=period, rtmidi=rtmidi_dir)
    pipewire.start()
    try:
        assert pipewire.buffer_size() == period, "PipeWire's clients run at the asked quantum"
        for path in ("direct", "thru"):
            report = measure(path, pipewire.env, pipewire.base_env, pipewire.pw_jack, model, count)
            results[("pipewire", path)] = summary(report["trips_ns"], report["sent"], report["duplicates"], period)
    finally:
        pipewire.close()
    return results


def print_period(period: int, results: dict[tuple[str, str], dict[str, float]]) -> None:
    period_ms = period / RATE * 1000
    print(f"\nperiod {period} frames at {RATE} Hz = {period_ms:.3f} ms")
    print(f"{'server':10} {'path':7} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'p50 per':>8} {'p99 per':>8} lost dup")
    for (server, path), r in results.items():
        print(f"{server:10} {path:7} {r['p50']:8.3f} {r['p99']:8.3f} {r['max']:8.3f} {r['p50_periods']:8.2f} "
              f"{r['p99_periods']:8.2f} {r['lost']:4.0f} {r['duplicates']:3.0f}")
    for path in ("direct", "thru"):
        pw, jd = results[("pipewire", path)], results[("jackd2", path)]
        print(f"PipeWire ÷ jackd2, {path}: p50 {pw['p50'] / jd['p50']:.2f}×, p99 {pw['p99'] / jd['p99']:.2f}×, "
              f"max {pw['max'] / jd['max']:.2f}×")
    for server in ("jackd2", "pipewire"):
        thru, direct = results[(server, "thru")], results[(server, "direct")]
        print(f"mididuet adds on {server}: p50 {thru['p50'] - direct['p50']:+.3f} ms, "
              f"p99 {thru['p99'] - direct['p99']:+.3f} ms")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--periods", type=int, nargs="+", default=[64, 256])
    parser.add_argument("--count", type=int, default=500, help="note-ons per path and server (10 ms apart)")
    parser.add_argument("--worker", choices=["measure", "echo"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "echo":
        return worker_echo()
    if args.worker == "measure":
        return worker_measure(args.count)
    rtmidi_dir = system_rtmidi()
    load = os.getloadavg()
    print(f"bench_pipewire: {args.count} note-ons 10 ms apart per path; load average {load[0]:.2f}")
    with tempfile.TemporaryDirectory() as tmp:
        model = make_bundle(Path(tmp) / "tiny.onnx", seed=3)
        for period in args.periods:
            print_period(period, run_period(period, args.count, model, rtmidi_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
