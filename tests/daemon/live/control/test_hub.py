"""The hub as the engine's observer: what a watcher is told, and that the CCs and the
socket's controls go through the same engine methods."""

from __future__ import annotations

from collections.abc import Callable

import mido

from mididuet.daemon.engine.controls import CC_TEMPERATURE_RANGE
from mididuet.daemon.engine.engine import Engine
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.live.control import controls
from mididuet.daemon.live.control.hub import ControlHub
from mididuet.daemon.music.units import NS_PER_MS as MS
from tests.helpers.engine import Sink

CC = EngineSettings()


def watched(build: Callable[..., tuple[Engine, Sink]], **fields: object) -> tuple[Engine, ControlHub]:
    engine, _sink = build(**fields)
    hub = ControlHub(lambda: None)
    hub.active = True
    engine.observers = (hub,)
    return engine, hub


def kinds(hub: ControlHub, kind: str) -> list[tuple]:
    return [event[1:] for event in hub.events if event[1] == kind]


def test_a_watcher_hears_the_player_the_tokens_decided_and_played_and_the_notes_out(build) -> None:
    engine, hub = watched(build, mode="solo", bpm=240.0)
    engine.begin(0)
    engine.feed(mido.Message("note_on", note=60, velocity=90, channel=2), 0)
    t = 0
    while t < 2000 * MS:
        t = engine.tick(t) or t + 10 * MS
    notes = kinds(hub, "note")
    assert ("note", 0, "in", True, 60, 90, 3) in notes
    assert any(event[2] == "out" and event[3] for event in notes)
    decided, played = kinds(hub, "decided"), kinds(hub, "played")
    assert len(played) >= 6 and len(decided) >= len(played)
    # each token played was the last one announced before it (in the order of events), for its deadline
    announced = None
    for event in hub.events:
        if event[1] == "decided":
            announced = (event[3], event[4])
        elif event[1] == "played":
            assert announced == (event[3], event[2])
    seqs = [event[0] for event in hub.events]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


def test_the_ccs_and_the_socket_report_the_same_changes(build) -> None:
    engine, hub = watched(build)
    engine.feed(mido.Message("control_change", control=CC.cc_mode, value=127), 1 * MS)
    engine.feed(mido.Message("control_change", control=CC.cc_temperature, value=0), 2 * MS)
    engine.feed(mido.Message("control_change", control=CC.cc_mute, value=127), 3 * MS)
    assert [e[2:] for e in kinds(hub, "changed")] == [("mode", "solo"), ("temperature", CC_TEMPERATURE_RANGE[0]),
                                                      ("mute", True)]
    hub.events.clear()
    controls.CONTROLS["mode"].set(engine, "jam")
    controls.CONTROLS["temperature"].set(engine, 1.5)
    controls.CONTROLS["mute"].set(engine, False)
    assert (engine.mode, engine.temperature, engine.mute) == ("jam", 1.5, False)
    assert [e[2:] for e in kinds(hub, "changed")] == [("mode", "jam"), ("temperature", 1.5), ("mute", False)]
    assert controls.values(engine).items() >= {"mode": "jam", "temperature": 1.5, "mute": False}.items()


def test_with_nobody_subscribed_nothing_is_queued(build) -> None:
    engine, hub = watched(build, mode="solo", bpm=240.0)
    hub.active = False
    engine.begin(0)
    t = 0
    while t < 1000 * MS:
        t = engine.tick(t) or t + 10 * MS
    engine.set_mode("duet")
    assert not hub.events


def test_the_controls_take_their_ranges_from_the_settings_declarations() -> None:
    described = {c["name"]: c for c in (control.describe() for control in controls.CONTROLS.values())}
    assert described["mode"]["choices"] == ["duet", "jam", "solo"]
    assert (described["temperature"]["min"], described["temperature"]["max"]) == (0.05, 5.0)
    assert described["mute"]["kind"] == "switch"
