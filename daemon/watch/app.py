"""``mididuet watch``: a running mididuet in the terminal, and its live controls on keys.

A thread of its own reads the control socket (:class:`.client.ControlClient`) into a
deque; the app takes what arrived :data:`REFRESH_HZ` times a second and redraws: the
piano roll (:mod:`.roll`), the mode, temperature, mute, pulse, ports, the live decision
time and lateness, the next token decided, the last warnings. Keys send requests
(``set``, ``panic``); their effect shows when the daemon reports the change. When the
daemon goes away (a restart of the service), the view says so and connects again to
the same path.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widget import Widget
from textual.widgets import Footer, Static

from ..errors import MididuetError
from ..music.units import NS_PER_MS
from .client import ControlClient
from .roll import COLUMN_MS, MIDIDUET, PLAYER, Roll, colour, render_roll
from .status import duration, port_text

REFRESH_HZ = 15
RECONNECT_S = 1.0
WARNINGS = 4  # the last warnings shown
MODES = ("duet", "jam", "solo")
SHOWN = ("mode", "temperature", "mute")
PULSE_SOURCES = {"bpm": "fixed", "clock": "from MIDI clock", "player": "from your playing",
                 "default": "(default, until you play)"}


class PianoRoll(Widget):
    """The roll, redrawn at each refresh; counts its renders (the view's refresh rate)."""

    DEFAULT_CSS = "PianoRoll { height: 1fr; min-height: 4; }"

    def __init__(self, roll: Roll) -> None:
        super().__init__()
        self.roll = roll
        self.renders = 0

    def render(self) -> Any:
        self.renders += 1
        return render_roll(self.roll, time.monotonic_ns(), self.size.width, self.size.height)


class WatchApp(App[int]):
    """The view of one daemon, at ``path``; ``client``: a connection already open (or None)."""

    TITLE = "mididuet watch"
    CSS = """
    Screen { layout: vertical; }
    #state, #stats, #ports { height: 1; padding: 0 1; }
    #warnings { height: auto; max-height: 5; padding: 0 1; color: $warning; }
    PianoRoll { border-top: solid $primary-darken-2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        Binding("d", "mode('duet')", "duet"),
        Binding("j", "mode('jam')", "jam"),
        Binding("s", "mode('solo')", "solo"),
        Binding("m", "next_mode", "next mode", show=False),
        Binding("plus,equals_sign", "step('temperature', 1)", "temp +"),
        Binding("minus", "step('temperature', -1)", "temp -"),
        Binding("right_square_bracket", "step('rhythm_temperature', 1)", "rhythm +"),
        Binding("left_square_bracket", "step('rhythm_temperature', -1)", "rhythm -"),
        Binding("full_stop", "step('memory', 1)", "memory +"),
        Binding("comma", "step('memory', -1)", "memory -"),
        Binding("space", "mute", "mute"),
        Binding("p", "panic", "panic"),
    ]

    def __init__(self, path: Path, client: ControlClient | None = None) -> None:
        super().__init__()
        self.path = path
        self.client = client
        self.inbox: deque[dict[str, Any]] = deque()
        self.status: dict[str, Any] | None = None
        self.roll = Roll()
        self.warnings: deque[str] = deque(maxlen=WARNINGS)
        self.next_token: tuple[str, int | None] | None = None
        self.last_played: str | None = None
        self.connected = client is not None
        self.messages = 0  # messages taken from the socket
        self.ticks = 0  # view updates
        self._stopping = threading.Event()
        self._column = 0
        self.controls: dict[str, dict[str, Any]] = {}  # the daemon's description of each control

    # --- layout ----------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Static(id="state")
        yield Static(id="ports")
        yield Static(id="stats")
        self.piano = PianoRoll(self.roll)
        self.piano.border_title = (f"[{colour(PLAYER, 100).name}]■[/] you  "
                                   f"[{colour(MIDIDUET, 100).name}]■[/] mididuet")
        yield self.piano
        yield Static(id="warnings")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = str(self.path)
        self._reader = threading.Thread(target=self._read, name="mididuet-watch-reader", daemon=True)
        self._reader.start()
        self.set_interval(1 / REFRESH_HZ, self.update_view)
        self.update_view()

    def on_unmount(self) -> None:
        self._stopping.set()
        if self.client is not None:
            self.client.close()

    # --- the reader thread ------------------------------------------------------------------
    def _read(self) -> None:
        subscribed: ControlClient | None = None
        while not self._stopping.is_set():
            client = self.client
            try:
                if client is None:
                    client = self.client = ControlClient(self.path)
                if client is not subscribed:
                    client.send("subscribe")
                    client.send("controls")
                    subscribed = client
                    self.connected = True
                message = client.read(0.5)
            except MididuetError:  # not running (yet): the service may be restarting
                self._stopping.wait(RECONNECT_S)
                continue
            except (OSError, ValueError):
                if client is not None:
                    client.close()
                self.client = None
                self.connected = False
                self.inbox.append({"event": "_gone"})
                continue
            if message is not None:
                self.inbox.append(message)

    # --- what arrived -------------------------------------------------------------------------
    def update_view(self) -> None:
        now = time.monotonic_ns()
        notes = self.roll.changes
        while self.inbox:
            self.take(self.inbox.popleft())
        self.roll.trim(now)
        self.ticks += 1
        self.query_one("#state", Static).update(self.state_text(now))
        self.query_one("#ports", Static).update(self.ports_text())
        self.query_one("#stats", Static).update(self.stats_text())
        self.query_one("#warnings", Static).update("\n".join(self.warnings))
        column = now // (COLUMN_MS * NS_PER_MS)
        if self.roll.changes != notes or column != self._column:  # the roll moves one column at a time
            self._column = column
            self.piano.refresh()

    def take(self, message: dict[str, Any]) -> None:
        self.messages += 1
        kind = message.get("event")
        if kind is None:  # a reply
            if not message.get("ok"):
                self.warnings.append(f"refused: {message.get('message')}")
            elif "status" in message:
                self.status = message["status"]
            elif "controls" in message:
                self.controls = {c["name"]: c for c in message["controls"]}
            return
        if kind == "note":
            self.roll.note(message)
        elif kind == "played":
            self.last_played = message["token"]
            self.next_token = None
        elif kind == "decided":
            self.next_token = (message["token"], message["due"])
        elif kind == "changed":
            if message["name"] == "panic":
                self.warnings.append("panic: every note released")
            elif self.status is not None:
                self.status["controls"][message["name"]] = message["value"]
                self.next_token = None  # decided under the old setting
        elif kind == "status":
            self.status = message["status"]
        elif kind == "ports" and self.status is not None:
            self.status["ports"] = message["ports"]
        elif kind == "warning":
            self.warnings.append(f"{message['level']}: {message['message']}")
        elif kind == "lost":
            self.warnings.append(f"the view missed {message['count']} events (the daemon was busier)")
        elif kind == "_gone":
            self.roll.end_all(time.monotonic_ns())
            self.warnings.append("mididuet went away: waiting for it at the same path")

    # --- the panels -----------------------------------------------------------------------
    def state_text(self, now: int) -> str:
        if self.status is None or not self.connected:
            return f"[b]not connected[/b]: waiting for mididuet at {self.path}"
        s = self.status
        c = s["controls"]
        mute = "[reverse red b] MUTED [/]" if c["mute"] else "[green]live[/]"
        pulse = s["pulse"]
        upcoming = ""
        if self.next_token is not None:
            token, due = self.next_token
            if due is None or due >= now:
                when = "" if due is None else f" in {(due - now) / NS_PER_MS:.0f} ms"
                upcoming = f"  next [b]{token}[/b]{when}"
        # Controls beyond these three (new ones come from the daemon's table) are shown as they are.
        more = "".join(f"  {name.replace('_', ' ')} [b]{value:.2f}[/b]" for name, value in c.items()
                       if name not in SHOWN and isinstance(value, int | float) and not isinstance(value, bool))
        return (f"mode [reverse b] {c['mode']} [/]  {s.get('rhythm', 'pulse')}  "
                f"temperature [b]{c['temperature']:.2f}[/b]{more}  {mute}  "
                f"pulse [b]{pulse['bpm']:g}[/b] BPM {PULSE_SOURCES.get(pulse['source'], pulse['source'])}"
                f"{upcoming}")

    def ports_text(self) -> str:
        if self.status is None:
            return ""
        s = self.status
        ports = "  ".join(port_text(p) for p in s["ports"])
        return f"{ports}  model {s['model']['name']}  pid {s['pid']} up {duration(s['uptime_s'])}"

    def stats_text(self) -> str:
        if self.status is None:
            return ""
        s = self.status
        figures = s.get("recent") or s
        d, lat, counts = figures["decision_ms"], figures["lateness_ms"], s["counts"]
        when = f"{figures['seconds']:g} s" if "seconds" in figures else "all"
        return (f"notes in {counts['notes_in']} out {counts['notes_out']}  decision {d['p50']:.2f}/{d['p99']:.2f} ms"
                f"  late {lat['p50']:.2f}/{lat['p99']:.2f} ms (p50/p99, {when})  dropped {counts['dropped']}")

    # --- keys ---------------------------------------------------------------------------------
    def _send(self, cmd: str, **fields: Any) -> None:
        client = self.client
        if client is None:
            self.warnings.append("not connected: the key does nothing")
            return
        try:
            client.send(cmd, **fields)
        except OSError as err:
            self.warnings.append(f"could not send: {err}")

    def action_mode(self, mode: str) -> None:
        self._send("set", name="mode", value=mode)

    def action_next_mode(self) -> None:
        if self.status is not None:
            current = self.status["controls"]["mode"]
            self.action_mode(MODES[(MODES.index(current) + 1) % len(MODES)])

    def action_step(self, name: str, direction: int) -> None:
        """A numeric control one step up or down, within its range."""
        described = self.controls.get(name)
        if self.status is not None and described is not None and name in self.status["controls"]:
            value = self.status["controls"][name] + direction * described["step"]
            self._send("set", name=name, value=round(min(max(value, described["min"]), described["max"]), 2))

    def action_mute(self) -> None:
        if self.status is not None:
            self._send("set", name="mute", value=not self.status["controls"]["mute"])

    def action_panic(self) -> None:
        self._send("panic")


def run(path: Path) -> int:
    """Watch the daemon at ``path`` until ``q``. Raises ``MididuetError`` (exit 2) when none runs."""
    client = ControlClient(path)  # fails fast, in one line, before the screen is taken over
    WatchApp(path, client).run()
    return 0
