"""An output whose ``send`` raises ``OSError`` counts as lost, and nothing is left hanging.

JACK does not raise when a port goes away (the e2e tests cover that path for real, by
closing the synth's port); an ``OSError`` from ``send`` comes from other backends
(a USB device failing under ALSA or CoreMIDI) and cannot be caused on this machine, so
here a fake port raises it. Everything else is real: the engine, the model, the runner.
"""

from __future__ import annotations

from pathlib import Path

import mido

from daemon import ports
from daemon.bundle import load_bundle
from daemon.links import PortLink
from daemon.reload import new_engine
from daemon.runner import Runner, RunOptions
from daemon.settings import EngineSettings


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
        elif msg.type == "control_change" and msg.control == 123:
            sounding = {key for key in sounding if key[0] != msg.channel}
    return not sounding


def test_a_failed_send_on_a_port_that_still_works_releases_its_notes(tiny_model: Path) -> None:
    """One transient error: the note-offs must still reach the synth, not be dropped."""
    runner = Runner(RunOptions(out_port="usb synth", retry_s=2.0))
    api = ports.select_api("jack")
    out = PortLink(api, "output", "usb synth")
    port = FailingPort()
    out.port = port
    runner.links = [out, PortLink(api, "input", None, runner._on_message)]
    runner.model = load_bundle(tiny_model)
    runner.engine = new_engine(runner.model, EngineSettings(mode="solo", bpm=400), runner.send, None, None, None)
    runner.engine.tick(runner.engine._now + 10**9)
    assert any(m.type == "note_on" for m in port.sent)
    port.broken = True
    runner.engine.tick(runner.engine._now + 10**9)  # this send fails once...
    port.broken = False  # ...and the device answers again
    runner.look_at_ports()
    assert ended(port.sent), "a note-on reached the synth without its note-off"


def test_a_send_error_marks_the_output_lost_and_releases_the_ledger(tiny_model: Path) -> None:
    runner = Runner(RunOptions(out_port="usb synth", retry_s=2.0))
    api = ports.select_api("jack")  # loads the backend only; no port is opened here
    out = PortLink(api, "output", "usb synth")
    out.port = FailingPort()
    runner.links = [out, PortLink(api, "input", None, runner._on_message)]
    runner.model = load_bundle(tiny_model)
    runner.engine = new_engine(runner.model, EngineSettings(mode="solo", bpm=400), runner.send, None, None, None)
    runner.engine.tick(runner.engine._now + 10**9)  # solo plays its first token
    assert len(runner.engine.ledger) > 0
    out.port.broken = True
    runner.engine.tick(runner.engine._now + 10**9)  # the next token's send fails inside the engine
    assert runner._send_error is not None, "the error is noted, not raised through the engine"
    runner.look_at_ports()
    assert out.lost and not out.playing
    assert len(runner.engine.ledger) == 0, "every note released"
    assert "lost" in runner.status() and "usb synth" in runner.status()
    sent_before = len(out.port.sent)
    runner.engine.tick(runner.engine._now + 10**9)
    assert len(out.port.sent) == sent_before, "nothing is sent to a lost port"
