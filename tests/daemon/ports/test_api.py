"""Choosing the MIDI API: --api, then MIDO_BACKEND, then the platform's (no server needed)."""

from __future__ import annotations

import pytest

from mididuet.daemon.ports.api import APIS, MidiApi, PortError, api_from_env, platform_api, select_api, translate


@pytest.mark.parametrize(("platform", "api"), [("linux", "alsa"), ("darwin", "coremidi"), ("win32", "winmm"),
                                               ("cygwin", "winmm"), ("freebsd13", "jack")])
def test_each_platform_has_its_own_default(platform: str, api: str) -> None:
    assert platform_api(platform) == api


def test_mido_backend_names_an_api_or_none() -> None:
    assert api_from_env(None) is None and api_from_env("") is None
    assert api_from_env("mido.backends.rtmidi") is None
    assert api_from_env("mido.backends.rtmidi/UNIX_JACK") == "jack"
    assert api_from_env("mido.backends.rtmidi/LINUX_ALSA") == "alsa"


@pytest.mark.parametrize(("value", "message"), [
    ("mido.backends.portmidi", "mididuet needs mido.backends.rtmidi"),
    ("mido.backends.rtmidi/PULSE", "unknown API 'PULSE'"),
])
def test_a_mido_backend_mididuet_cannot_use_is_refused(value: str, message: str) -> None:
    with pytest.raises(PortError, match=message):
        api_from_env(value)


def test_the_flag_wins_then_the_environment_then_the_platform() -> None:
    assert select_api("jack", environ={"MIDO_BACKEND": "mido.backends.rtmidi/LINUX_ALSA"}).name == "jack"
    assert select_api(None, environ={"MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK"}).name == "jack"
    assert select_api(None, environ={}).name == platform_api()


def test_an_unknown_api_or_one_this_build_lacks_is_refused() -> None:
    with pytest.raises(PortError, match="unknown MIDI API 'pulse'; choose one of jack, alsa, coremidi, winmm"):
        select_api("pulse", environ={})
    missing = next((name for name in APIS if name in ("coremidi", "winmm")), None)
    with pytest.raises(PortError, match=f"MIDI API {missing!r} is not available in this python-rtmidi build"):
        select_api(missing, environ={})


def test_library_errors_become_advice() -> None:
    jack = MidiApi("jack", select_api("jack", environ={}).backend)
    advice = str(translate(jack, RuntimeError("JACK server not running?"), environ={}))  # no PipeWire socket
    assert "cannot reach a JACK server" in advice and "start JACK first" in advice
    alsa = MidiApi("alsa", jack.backend)
    assert "modprobe snd-seq" in str(translate(alsa, SystemError("error creating ALSA sequencer client object")))
    assert str(translate(jack, OSError("")))  == "jack MIDI: OSError"
