"""Flood: 2,000 MIDI messages a second into a real ``mididuet run`` through real JACK.

A separate process (this module run with ``--send``) is the flooding keyboard: a raw
python-rtmidi JACK output sending notes, CCs, pitch bend, channel and poly aftertouch,
clock and sysex at a steady 2,000 messages/s. The daemon plays in jam mode at 400 BPM
with ``--stats`` meanwhile, so it has notes to decide and send under the load. From the
daemon's ``stats at exit`` line come decision time and lateness p99 (inside the daemon),
the messages it took and dropped; from /proc its RSS early and late in the flood; from its
own recording (``--record``) what it sent, each note ended by its note-off in time; from a
monitoring JACK client what arrived, every note left sounding there explained by a note-off
JACK lost on the way.

``make test`` floods for 5 s; ``--long`` (or ``MIDIDUET_LONG=1``) for 30 s as the issue asks.
The figures of a run are printed (``-s`` shows them) for docs/reliability.md.

The overload policy itself (:mod:`mididuet.daemon.listen.intake`) is tested here without ports too: a
loop that stops taking messages cannot be caused from outside the process (SIGSTOP would
stop rtmidi's thread with it), so those tests feed ``Intake.put`` (a message's bytes, as
rtmidi hands them over) directly and a consumer that does not consume.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import mido
import pytest

from mididuet.daemon.listen.intake import HARD_LIMIT, Intake
from mididuet.daemon.live.record import NS_PER_TICK
from tests.helpers.jack import REPO, DaemonProcess, JackServer, Monitor, hanging, quiet_for

RATE = 2_000  # messages per second
BATCH_S = 0.005  # the sender wakes every 5 ms and sends what is due (10 messages)
# The daemon issue's targets: decision p99 <= 0.5 ms is the back-to-back benchmark's
# (benchmarks/RESULTS.md); inside the running daemon, with caches cold between
# tokens, its baseline without load is p99 1.25 ms, so under the flood it must stay
# within twice that. Lateness inside the daemon: p99 <= 1 ms.
DECISION_P99_MS = 2.5
DECISION_P50_MS = DECISION_P99_MS / 2
# Lateness p99 <= 1 ms, the target, under this flood too: measured 0.50-0.96 ms
# in nine 30 s floods at 64 frames on a quiet machine, the loop waiting out the last 2 ms
# before a deadline awake in zero sleeps (daemon.runner.SPIN_NS; docs/reliability.md).
LATENESS_P99_MS = 1.0
# A p99 means little over a few notes, and the notes of a chord are late together (up to
# 3 samples from one stall). The 5 s flood plays ~80 notes, so its p99 is its latest
# chord, which one stall of a shared machine decides: CI saw 13 ms once, in a run where
# the flooding process itself woke 6.6 ms late. So the p99 is held to the target over
# 300 notes or more (--long plays ~380); below that the median is held to half the target
# (measured 0.11-0.21 ms; a note decided at its deadline takes ~0.7 ms), and the latest
# note to LATENESS_MAX_MS, later than which a note would be a stumble a player hears (a
# blocked loop, not a busy machine). Decision time likewise: its p99 over ~80 notes is
# one stall too (3.0-15.6 ms in 4 of 8 floods on a quiet 2-core VM, medians 0.62-0.65).
P99_NEEDS_NOTES = 300
LATENESS_P50_MS = 0.5
LATENESS_MAX_MS = 50.0
DECISION_MAX_MS = LATENESS_MAX_MS  # a decision that long would make its note a stumble too
# At 400 BPM the tiny model's notes last 0.9 pulse (135 ms); a note-off the engine forgot
# would leave its note sounding until the exit's release, seconds later.
LONGEST_NOTE_MS = 1000.0
RSS_DRIFT_MB = 10.0
# Of the daemon's messages, JACK may lose a few on their way to the monitor, a chord's at
# a time when a cycle is missed: CI once lost 4 of ~150 (none in 19 floods here since).
# A loss in the daemon below its recorder (the port's send) would look the same.
LOST_OUT_SHARE = 0.05

# One cycle of 20 messages (repeated): 4 note events, 3 CCs, 4 pitch bends, 2 channel
# aftertouch, 2 poly aftertouch, 4 clocks, 1 sysex. CCs avoid the engine's controls
# (21-24) and the pedal, so the flood plays, it does not steer.
def _cycle(i: int) -> list[list[int]]:
    note = 48 + (i * 7) % 36
    bend = (i * 37) % 16384
    return [
        [0x90, note, 64 + i % 60], [0xB0, 1, i % 128], [0xE0, bend & 0x7F, bend >> 7], [0xF8],
        [0xD0, i % 128], [0xE0, (bend + 1) & 0x7F, (bend + 1) >> 7], [0xB0, 7, 100], [0xF8],
        [0xA0, note, i % 128], [0x80, note, 0], [0xE0, (bend + 2) & 0x7F, (bend + 2) >> 7], [0xF8],
        [0xF0, 0x7D, i % 128, 0x01, 0x02, 0xF7], [0x90, note + 2, 80], [0xD0, (i + 5) % 128], [0xF8],
        [0xB0, 11, i % 128], [0xE0, (bend + 3) & 0x7F, (bend + 3) >> 7], [0xA0, note + 2, 9], [0x80, note + 2, 0],
    ]


def send_flood(client: str, seconds: float, rate: int) -> int:
    """Open a JACK output ``client:out``, wait for ``go`` on stdin, send ``rate`` messages/s
    for ``seconds`` against absolute deadlines; returns the number sent."""
    import rtmidi

    lag = 0.0
    out = rtmidi.MidiOut(rtmidi.API_UNIX_JACK, client)
    out.open_virtual_port("out")
    print("open", flush=True)
    sys.stdin.readline()  # the test connects the daemon first
    per_batch = int(rate * BATCH_S)
    sent = 0
    cycle = 0
    pending: list[list[int]] = []
    start = time.monotonic()
    batches = int(seconds / BATCH_S)
    for b in range(batches):
        while len(pending) < per_batch:
            pending += _cycle(cycle)
            cycle += 1
        for event in pending[:per_batch]:
            out.send_message(event)
        del pending[:per_batch]
        sent += per_batch
        delay = start + (b + 1) * BATCH_S - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        else:
            lag = max(lag, -delay)
    # Release any note a cut cycle left down, so the player side ends clean too.
    for note in range(128):
        out.send_message([0x80, note, 0])
    sent += 128
    time.sleep(0.2)  # let JACK deliver the ring buffer before the client goes
    out.close_port()
    print(f"sender max lag {lag * 1000:.1f} ms", file=sys.stderr, flush=True)
    return sent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"no VmRSS for pid {pid}")


STATS = re.compile(r"decision p50 (?P<d50>[\d.]+) p99 (?P<d99>[\d.]+) max (?P<dmax>[\d.]+) ms \| "
                   r"lateness p50 (?P<l50>[\d.]+) p99 (?P<l99>[\d.]+) max (?P<lmax>[\d.]+) ms \| "
                   r"input (?P<input>\d+) dropped (?P<dropped>\d+) \((?P<by_type>[^)]*)\) "
                   r"max waiting (?P<peak>\d+)")


def parse_stats(line: str) -> dict[str, float]:
    found = STATS.search(line)
    assert found, f"no stats in {line!r}"
    notes = re.search(r"notes in (\d+) out (\d+)", line)
    assert notes
    figures = {k: float(v) for k, v in found.groupdict().items() if k != "by_type"}
    figures["notes_in"], figures["notes_out"] = float(notes[1]), float(notes[2])
    return figures


def flood(jack_server: JackServer, tiny_model: Path, monitor: Monitor, seconds: float,
          record_dir: Path) -> dict[str, float]:
    """Flood a daemon for ``seconds``, recording the session into ``record_dir`` (the
    daemon's own account of what it sent); returns the figures. Asserts as it goes."""
    client = f"mdtest-flood-{os.urandom(3).hex()}"
    env = {**os.environ, **jack_server.env}
    sender = subprocess.Popen([sys.executable, "-m", "tests.reliability.test_flood", "--send", client,
                               "--seconds", str(seconds), "--rate", str(RATE)],
                              cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    daemon: DaemonProcess | None = None
    try:
        assert sender.stdout is not None and sender.stdin is not None
        assert sender.stdout.readline().strip() == "open"
        args = ["--model", str(tiny_model), "--api", "jack", "--in", f"{client}:out", "--out", monitor.name,
                "--mode", "jam", "--bpm", "400", "--stats", "600", "--record", str(record_dir)]
        daemon = DaemonProcess(args, jack_server.env)
        daemon.wait_ready()
        pid = daemon.process.pid
        started = time.monotonic()
        sender.stdin.write("go\n")
        sender.stdin.flush()
        early_at, late_at = seconds / 3, seconds - 0.3  # 10 s and ~30 s of a 30 s flood
        time.sleep(early_at)
        rss_early = rss_mb(pid)
        time.sleep(max(late_at - (time.monotonic() - started), 0))
        rss_late = rss_mb(pid)
        sent = int(sender.communicate(timeout=seconds + 30)[0].strip().splitlines()[-1])
        assert sender.returncode == 0
        assert daemon.process.poll() is None, f"the daemon died under the flood:\n{daemon.stderr}"
        assert quiet_for(monitor, 0.4, 5)
        assert daemon.stop() == 0, daemon.stderr
        assert "Traceback" not in daemon.stderr, daemon.stderr
        figures = parse_stats(daemon.wait_for_line("stats at exit"))
        figures.update(sent=sent, rss_early=rss_early, rss_late=rss_late, seconds=seconds,
                       played=len(monitor.note_ons()))
        figures.update(account(daemon_sent(record_dir), monitor.messages))
        print(f"\nflood {seconds:g} s: {figures}\n{daemon.wait_for_line('stats at exit')}")
        return figures
    finally:
        if sender.poll() is None:
            sender.kill()
            sender.wait()
        if daemon is not None:
            daemon.stop()


def daemon_sent(record_dir: Path) -> list[tuple[int, mido.Message]]:
    """What the daemon sent, ``(ns since the recording began, message)``, from its own
    session recording (track 2: mididuet)."""
    paths = list(record_dir.glob("mididuet-*.mid"))
    assert len(paths) == 1, f"expected the daemon's one recording in {record_dir}, found {paths}"
    sent, ticks = [], 0
    for msg in mido.MidiFile(paths[0]).tracks[1]:
        ticks += msg.time
        if not msg.is_meta:
            sent.append((round(ticks * NS_PER_TICK), msg))
    return sent


def note_spans(events: list[tuple[int, mido.Message]]) -> tuple[int, float]:
    """How many note-ons came for a note already sounding (no note-off between), and the
    longest note, in ms from its note-on to its note-off."""
    sounding: dict[tuple[int, int], int] = {}
    restruck, longest = 0, 0
    for t, msg in events:
        key = (getattr(msg, "channel", -1), getattr(msg, "note", -1))
        if msg.type == "note_on" and msg.velocity > 0:
            restruck += key in sounding
            sounding[key] = t
        elif msg.type in ("note_on", "note_off") and key in sounding:
            longest = max(longest, t - sounding.pop(key))
    return restruck, longest / 1e6


def account(sent: list[tuple[int, mido.Message]], heard: list[tuple[int, mido.Message]]) -> dict[str, float]:
    """The daemon's notes as it sent them and as the monitor heard them. Compared as
    multisets of messages: JACK can lose messages and, on a cycle the monitor reads late,
    hand it copies of the one before in their place (docs/reliability.md)."""
    def kept(events: list[tuple[int, mido.Message]]) -> collections.Counter[bytes]:
        return collections.Counter(bytes(m.bytes()) for _, m in events
                                   if m.type in ("note_on", "note_off", "control_change"))

    sent_counts, heard_counts = kept(sent), kept(heard)
    missing = sent_counts - heard_counts
    lost_offs = {(m[0] & 0x0F, m[1]) for m in missing
                 if m[0] & 0xF0 == 0x80 or (m[0] & 0xF0 == 0x90 and m[2] == 0)}
    restruck, longest = note_spans(sent)
    return {"messages_out": sum(sent_counts.values()), "lost_out": sum(missing.values()),
            "copies_in": sum((heard_counts - sent_counts).values()),
            "sent_hanging": len(hanging(sent)), "restruck": restruck, "longest_note_ms": longest,
            "unexplained_hanging": len(hanging(heard) - lost_offs),
            "hanging": len(hanging(heard, all_notes_off=True))}


def check_flood(figures: dict[str, float]) -> None:
    # Every message that reached the daemon was either taken or counted as dropped. On
    # the way JACK loses some when its graph misses cycles (jackd logs xruns of every
    # client, the sender and the monitor too, on a loaded 2-core machine): measured 0-30
    # in 10,128 over 5 s and 2-30 in 60,128 over 30 s, with mido's callback and with the
    # raw one alike. At most 1 in 200: more would be a loss of the daemon's own.
    assert figures["input"] + figures["dropped"] <= figures["sent"], figures
    assert figures["input"] + figures["dropped"] >= 0.995 * figures["sent"], figures
    assert figures["notes_in"] >= 0.09 * figures["sent"], figures  # a tenth are note-ons: they came in
    # It kept playing: at 400 BPM, ~6.7 tokens a second for the whole flood.
    assert figures["played"] >= 5 * figures["seconds"], figures
    # As sent (the daemon's recording): every note ended by a note-off of its own, in time,
    # never struck again while sounding.
    assert figures["sent_hanging"] == 0 and figures["restruck"] == 0, figures
    assert figures["longest_note_ms"] <= LONGEST_NOTE_MS, figures
    # As heard: JACK may lose a few messages when its graph misses a cycle (CI once left 4
    # notes sounding at the monitor), so a note still sounding there must be one whose
    # note-off was lost, and the exit's CC 123 ends it for a synth.
    assert figures["lost_out"] <= LOST_OUT_SHARE * figures["messages_out"], figures
    assert figures["unexplained_hanging"] == 0, figures
    assert figures["hanging"] == 0, figures
    assert figures["d50"] <= DECISION_P50_MS, figures
    assert figures["l50"] <= LATENESS_P50_MS, figures
    assert figures["dmax"] <= DECISION_MAX_MS and figures["lmax"] <= LATENESS_MAX_MS, figures
    if figures["notes_out"] >= P99_NEEDS_NOTES:
        assert figures["d99"] <= DECISION_P99_MS, figures
        assert figures["l99"] <= LATENESS_P99_MS, figures
    assert abs(figures["rss_late"] - figures["rss_early"]) <= RSS_DRIFT_MB, figures
    assert figures["peak"] <= HARD_LIMIT + 16 * 128 + 16, figures


@pytest.mark.jack
def test_a_flood_of_2000_messages_a_second(jack_server: JackServer, tiny_model: Path, monitor: Monitor,
                                           long_run: bool, tmp_path: Path) -> None:
    check_flood(flood(jack_server, tiny_model, monitor, 30.0 if long_run else 5.0, record_dir=tmp_path))


# --- the overload policy, without ports -----------------------------------------------------

def _drain(intake: Intake) -> list[mido.Message]:
    out = []
    while not intake.queue.empty():
        _t_ns, data = intake.queue.get_nowait()
        out.append(mido.Message.from_bytes(data))
    return out


def test_a_stalled_loop_queues_at_most_the_hard_limit_plus_releases() -> None:
    intake = Intake()
    # A loop that stopped taking messages: 32 keys and the pedal held on every channel,
    # then a flood of everything, then every key and pedal released.
    held = [(channel, note) for channel in range(16) for note in range(40, 72)]
    for channel, note in held:
        intake.put(mido.Message("note_on", channel=channel, note=note, velocity=90))
    for channel in range(16):
        intake.put(mido.Message("control_change", channel=channel, control=64, value=127))
    flood_types = [mido.Message("clock"), mido.Message("pitchwheel", pitch=5), mido.Message("aftertouch", value=1),
                   mido.Message("sysex", data=[1, 2]), mido.Message("note_on", note=60, velocity=80),
                   mido.Message("control_change", control=1, value=3)]
    for i in range(50_000):
        intake.put(flood_types[i % len(flood_types)])
    releases = [mido.Message("note_off", channel=c, note=n) for c, n in held]
    releases += [mido.Message("control_change", channel=c, control=64, value=0) for c in range(16)]
    stray = mido.Message("note_off", channel=5, note=100)  # its note-on never came: dropped
    for msg in [*releases[:100], stray, *releases[100:]]:
        intake.put(msg)
    kept = _drain(intake)
    assert len(kept) <= HARD_LIMIT + len(releases), len(kept)
    # Every release of a key or pedal that went in came through, in order, at the end.
    assert kept[-len(releases):] == releases
    assert intake.dropped["clock"] > 0 and intake.dropped["note_on"] > 0 and intake.dropped["note_off"] == 1
    assert intake.accepted + intake.dropped_total == len(held) + 16 + 50_000 + len(releases) + 1
    assert intake.peak >= HARD_LIMIT


def test_expendable_messages_go_first_and_notes_stay_until_the_hard_limit() -> None:
    intake = Intake(soft_limit=4, hard_limit=8)
    for _ in range(4):
        intake.put(mido.Message("clock"))
    intake.put(mido.Message("pitchwheel", pitch=1))  # 4 waiting: above the soft limit, dropped
    intake.put(mido.Message("note_on", note=60, velocity=80))  # notes still go in
    intake.put(mido.Message("control_change", control=7, value=1))
    intake.put(mido.Message("note_on", note=61, velocity=80))
    intake.put(mido.Message("note_on", note=62, velocity=80))
    intake.put(mido.Message("note_on", note=63, velocity=80))  # 8 waiting: dropped
    intake.put(mido.Message("note_off", note=63))  # its note-on was dropped: so is this
    intake.put(mido.Message("note_on", note=60, velocity=0))  # releases 60, which went in
    assert [m.type for m in _drain(intake)] == ["clock"] * 4 + ["note_on", "control_change", "note_on",
                                                                  "note_on", "note_on"]
    assert intake.dropped_text() == "note_off 1, note_on 1, pitchwheel 1"
    # Drained: everything goes in again.
    intake.put(mido.Message("clock"))
    assert len(_drain(intake)) == 1


def test_forgotten_keys_no_longer_force_their_note_offs_through() -> None:
    intake = Intake(soft_limit=1, hard_limit=1)
    intake.put(mido.Message("note_on", note=60, velocity=80))
    intake.forget_keys()  # the keyboard was lost with the key down
    intake.put(mido.Message("note_off", note=60))
    assert len(_drain(intake)) == 1 and intake.dropped["note_off"] == 1


def test_malformed_events_are_expendable_and_counted_by_their_first_byte() -> None:
    intake = Intake(soft_limit=1, hard_limit=8)
    intake.put_bytes([0xF8])  # fills the soft limit
    # Not well-formed notes or controls: no key is marked (note 200 would index past the
    # table), and they go the expendable way, dropped above the soft limit.
    for event in ([0x90, 200, 64], [0x9F, 60], [0xB0, 64, 128], [0x40, 0x40], [0xF4], []):
        intake.put_bytes(event)
    assert intake.dropped_text() == "other 3, note_on 2, control_change 1"
    assert not any(intake._down)
    intake.on_event(([0x90, 60, 80], 0.001), None)  # rtmidi's callback: a real note still goes in
    assert [m.type for m in _drain(intake)] == ["clock", "note_on"]


def test_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="soft_limit"):
        Intake(soft_limit=10, hard_limit=5)


def main() -> int:
    parser = argparse.ArgumentParser(description="the flooding keyboard (a JACK client)")
    parser.add_argument("--send", metavar="CLIENT", required=True)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=int, default=RATE)
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    print(send_flood(args.send, args.seconds, args.rate), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())


def test_an_empty_sysex_is_not_queued_but_shows_input_is_flowing() -> None:
    """The sysex closer's F0 F7 (daemon.ports.SysexCloser) carries nothing for the engine;
    it still tells the closer that RtMidi holds nothing back."""
    intake = Intake()
    before = time.monotonic_ns()
    intake.put_bytes([0xF0, 0xF7])
    assert intake.queue.empty() and intake.accepted == 0 and intake.dropped_total == 0
    assert intake.last_ns >= before
    intake.put_bytes([0xF0, 0x7D, 0x01, 0xF7])  # a sysex with data goes in as before
    assert intake.accepted == 1
