"""An output whose ``send`` raises ``OSError`` counts as lost, and nothing is left hanging.

JACK does not raise when a port goes away (the e2e tests cover that path for real, by
closing the synth's port); an ``OSError`` from ``send`` comes from other backends
(a USB device failing under ALSA or CoreMIDI) and cannot be caused on this machine, so
here a fake port raises it. Everything else is real: the engine, the model, the supervisor.
"""

from __future__ import annotations

from pathlib import Path

import mido

from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.live.supervisor import PortSupervisor
from mididuet.daemon.music.midi import ALL_NOTES_OFF
from mididuet.daemon.music.units import NS_PER_S as SECOND
from mididuet.daemon.ports.api import select_api
from mididuet.daemon.predict.bundle import load_bundle


class FailingPort:
    """A stand-in output that works, then fails like a device that was pulled out."""

    name = "usb synth"

    def __init__(self) -> None:
        self.sent: list[mido.Message] = []
        self.broken = False

    def send(self, msg: mido.Message) -> None:
        if self.broken:
            raise OSError(5, "Input/output error")
        self.sent.append(msg)

    def close(self) -> None:
        pass


def ended(sent: list[mido.Message]) -> bool:
    """Every note-on has a later note-off on its channel and key (or an All Notes Off)."""
    sounding: set[tuple[int, int]] = set()
    for msg in sent:
        if msg.type == "note_on" and msg.velocity > 0:
            sounding.add((msg.channel, msg.note))
        elif msg.type in ("note_off", "note_on"):
            sounding.discard((msg.channel, msg.note))
        elif msg.type == "control_change" and msg.control == ALL_NOTES_OFF:
            sounding = {key for key in sounding if key[0] != msg.channel}
    return not sounding


def supervised(tiny_model: Path) -> tuple[PortSupervisor, FailingPort, Engine, list[int]]:
    """A supervisor whose output is a failing port (no port list: nothing is listed here),
    and a solo engine playing to it."""
    woken: list[int] = []
    api = select_api("jack")  # loads the backend only; no port is opened here
    supervisor = PortSupervisor(api, None, "usb synth", lambda *_: None, lambda: woken.append(1), 2.0, None)
    port = FailingPort()
    supervisor.out_link.port = port
    engine = Engine(load_bundle(tiny_model), EngineSettings(mode="solo", bpm=400), supervisor.send, 0)
    return supervisor, port, engine, woken


def test_a_failed_send_on_a_port_that_still_works_releases_its_notes(tiny_model: Path) -> None:
    """One transient error: the note-offs must still reach the synth, not be dropped."""
    supervisor, port, engine, _ = supervised(tiny_model)
    engine.tick(engine.now_ns + SECOND)
    assert any(m.type == "note_on" for m in port.sent)
    port.broken = True
    engine.tick(engine.now_ns + SECOND)  # this send fails once...
    port.broken = False  # ...and the device answers again
    supervisor.look(engine.release_all)
    assert ended(port.sent), "a note-on reached the synth without its note-off"


def test_a_send_error_marks_the_output_lost_and_releases_the_ledger(tiny_model: Path) -> None:
    supervisor, port, engine, woken = supervised(tiny_model)
    engine.tick(engine.now_ns + SECOND)  # solo plays its first token
    assert len(engine.ledger) > 0
    port.broken = True
    engine.tick(engine.now_ns + SECOND)  # the next token's send fails inside the engine
    assert supervisor.send_failed and woken == [1], "the error is noted and the loop woken, not raised"
    changes = supervisor.look(engine.release_all)
    assert [(c.link.kind, c.event) for c in changes] == [("output", "lost")]
    assert supervisor.out_link.lost and not supervisor.out_link.playing
    assert len(engine.ledger) == 0, "every note released"
    assert "lost" in supervisor.describe() and "usb synth" in supervisor.describe()
    sent_before = len(port.sent)
    engine.tick(engine.now_ns + SECOND)
    assert len(port.sent) == sent_before, "nothing is sent to a lost port"
