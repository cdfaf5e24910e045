"""``mididuet status``: a running mididuet in a few lines, or as JSON for scripts."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .client import ControlClient


def fetch_status(path: Path) -> dict[str, Any]:
    """The daemon's status reply. Raises ``MididuetError`` when none answers."""
    client = ControlClient(path)
    try:
        return client.request("status")["status"]
    finally:
        client.close()


def port_text(port: dict[str, Any]) -> str:
    label = "in" if port["kind"] == "input" else "out"
    name = port["name"] if port["state"] == "playing" else port["query"]
    return f"{label} {name!r} {port['state']}"


def duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def figures(stats: dict[str, Any]) -> str:
    d, lat = stats["decision_ms"], stats["lateness_ms"]
    return (f"decision p50 {d['p50']:.2f} p99 {d['p99']:.2f} ms, lateness p50 {lat['p50']:.2f} "
            f"p99 {lat['p99']:.2f} max {lat['max']:.2f} ms ({lat['notes']} notes)")


def format_status(status: dict[str, Any]) -> str:
    """The summary people read."""
    controls, counts, pulse = status["controls"], status["counts"], status["pulse"]
    mute = "muted" if controls["mute"] else "not muted"
    lines = [
        f"mididuet pid {status['pid']}, up {duration(status['uptime_s'])}, model {status['model']['name']} "
        f"({status['model']['tokens']} tokens)",
        f"mode {controls['mode']}, temperature {controls['temperature']:.2f}, {mute}"
        f"{', playing' if status['playing'] else ''}",
        f"rhythm {status['rhythm']} (temperature {controls['rhythm_temperature']:.2f}), memory weight "
        f"{controls['memory']:.2f} ({status['memory_tokens']} tokens remembered)",
        f"pulse {pulse['bpm']:g} BPM from {pulse['source']}",
        "ports: " + ", ".join(port_text(port) for port in status["ports"]),
        f"notes in {counts['notes_in']}, out {counts['notes_out']}, answers {counts['answers']}; input taken "
        f"{counts['input']}, dropped {counts['dropped']}, malformed {counts['malformed']}",
    ]
    recent = status.get("recent")
    if recent is not None:
        lines.append(f"last {recent['seconds']:g} s: {figures(recent)}")
    lines.append(f"since start: {figures(status)}")
    control = status["control"]
    lines.append(f"control socket {control['path']} ({control['clients']} client{'s' * (control['clients'] != 1)})")
    return "\n".join(lines)


def run(path: Path, as_json: bool) -> int:
    status = fetch_status(path)
    print(json.dumps(status, indent=2) if as_json else format_status(status))
    return 0
