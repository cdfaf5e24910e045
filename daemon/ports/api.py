"""The MIDI API: which one to use, and what its errors mean for the user.

The API is chosen once, explicitly, in a :class:`MidiApi`: outputs and listings go
through its ``mido.Backend`` object (never mido's global ``set_backend``), so tests can
run two backends side by side; the input is opened with python-rtmidi on the same API
(:mod:`.input`). The API is, in order: ``--api``, the API named in ``MIDO_BACKEND``
(``mido.backends.rtmidi/UNIX_JACK``), the platform's own (ALSA on Linux, CoreMIDI on
macOS, Windows MultiMedia on Windows). python-rtmidi picks ALSA when no API is given, so
on a JACK-only machine the API must be named.

Library errors (rtmidi's ``SystemError``, mido's ``OSError``/``ValueError``) are
translated here into :class:`PortError` with a message that says what to do; when no
JACK server answers, from which libjack rtmidi calls and whether PipeWire runs here
(:func:`jack_advice`, :mod:`.libjack`).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import mido
import rtmidi

from ..errors import MididuetError
from .libjack import LibJack, pipewire_socket, rebuild_command, rtmidi_libjack

RTMIDI_MODULE = "mido.backends.rtmidi"
# Our API names (the --api choices) and rtmidi's.
APIS = {"jack": "UNIX_JACK", "alsa": "LINUX_ALSA", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}
_API_BY_RTMIDI = {rt: ours for ours, rt in APIS.items()}
JACK_ENV_HINT = (
    "start JACK first (e.g. `jackd -d alsa` or QjackCtl), or choose another API with --api"
)
PW_JACK_RUN = "pw-jack mididuet run --api jack"  # pw-jack points libjack at PipeWire's
# What rtmidi and mido raise for a port or API problem; anything else is a bug.
LIBRARY_ERRORS = (rtmidi.RtMidiError, OSError, ValueError, RuntimeError)


class PortError(MididuetError):
    """A MIDI API or port that cannot be used; the message says what to do."""


@dataclass(frozen=True)
class MidiApi:
    """The MIDI API in use and the mido backend that talks to it."""

    name: str  # one of APIS
    backend: mido.Backend

    @property
    def virtual_ports(self) -> bool:
        """Windows MultiMedia has no virtual ports (rtmidi raises); the others do."""
        return self.name != "winmm"


def platform_api(platform: str = sys.platform) -> str:
    """The API a platform's users have by default."""
    if platform.startswith("linux"):
        return "alsa"
    if platform == "darwin":
        return "coremidi"
    if platform.startswith(("win", "cygwin")):
        return "winmm"
    return "jack"


def api_from_env(value: str | None) -> str | None:
    """The API named by a ``MIDO_BACKEND`` value, or None when it names none.

    Raises :class:`PortError` for a backend other than rtmidi or an unknown API.
    """
    if not value:
        return None
    module, _, api = value.partition("/")
    if module != RTMIDI_MODULE:
        raise PortError(f"MIDO_BACKEND={value!r}: mididuet needs {RTMIDI_MODULE} (e.g. {RTMIDI_MODULE}/UNIX_JACK)")
    if not api:
        return None
    if api not in _API_BY_RTMIDI:
        raise PortError(f"MIDO_BACKEND={value!r}: unknown API {api!r}; use one of {', '.join(_API_BY_RTMIDI)}")
    return _API_BY_RTMIDI[api]


def select_api(api: str | None = None, environ: dict[str, str] | None = None) -> MidiApi:
    """The API to use: ``api`` if given, else ``MIDO_BACKEND``'s, else the platform's.

    Raises :class:`PortError` for an unknown API or one this python-rtmidi lacks.
    """
    env = os.environ if environ is None else environ
    name = api or api_from_env(env.get("MIDO_BACKEND")) or platform_api()
    if name not in APIS:
        raise PortError(f"unknown MIDI API {name!r}; choose one of {', '.join(APIS)}")
    compiled = [rtmidi.get_api_name(a) for a in rtmidi.get_compiled_api()]
    if name not in compiled:
        raise PortError(
            f"MIDI API {name!r} is not available in this python-rtmidi build "
            f"(available: {', '.join(compiled) or 'none'}); choose one with --api"
        )
    return MidiApi(name, mido.Backend(f"{RTMIDI_MODULE}/{APIS[name]}", load=True))


def translate(api: MidiApi, err: BaseException, environ: dict[str, str] | None = None) -> PortError:
    """A library error turned into advice for the user."""
    text = str(err).strip() or type(err).__name__
    if api.name == "jack" and "server not running" in text:
        return PortError(jack_advice(text, rtmidi_libjack(), pipewire_socket(environ)))
    if api.name == "alsa" and "ALSA" in text:
        return PortError(f"cannot open the ALSA sequencer ({text}): is the snd-seq kernel module "
                         "loaded (`sudo modprobe snd-seq`)? Or use JACK: --api jack")
    return PortError(f"{api.name} MIDI: {text}")


def jack_advice(text: str, libjack: LibJack | None, pipewire: Path | None) -> str:
    """What to do when no JACK server answers, from the libjack rtmidi calls and PipeWire's socket."""
    head = f"cannot reach a JACK server ({text})"
    if libjack is not None and libjack.bundled:
        fix = f"rebuild it against the system's libjack: `{rebuild_command()}`"
        if pipewire is not None:
            return (f"{head}: PipeWire runs here ({pipewire}), but this python-rtmidi calls its own bundled "
                    f"libjack ({libjack.path}), which cannot reach PipeWire; {fix}, then `{PW_JACK_RUN}`")
        return (f"{head}: {JACK_ENV_HINT}; JACK_DEFAULT_SERVER names the server to use "
                f"(if your JACK is PipeWire's, this python-rtmidi's bundled libjack cannot reach it: {fix})")
    if libjack is not None and libjack.pipewire and pipewire is None:
        return (f"{head}: this is PipeWire's libjack ({libjack.path}) but no PipeWire socket was found "
                "($XDG_RUNTIME_DIR/pipewire-0): start PipeWire (`systemctl --user start pipewire`)")
    if pipewire is not None and (libjack is None or not libjack.pipewire):
        owner = "" if libjack is None else f", but python-rtmidi calls {libjack.owner} libjack ({libjack.path})"
        return (f"{head}: PipeWire runs here ({pipewire}){owner}; "
                f"start mididuet through PipeWire's JACK: `{PW_JACK_RUN}`")
    return f"{head}: {JACK_ENV_HINT}; JACK_DEFAULT_SERVER names the server to use"


def rtmidi_api(api: MidiApi) -> int:
    """python-rtmidi's number for ``api``."""
    return getattr(rtmidi, f"API_{APIS[api.name]}")


def no_virtual(kind: str) -> PortError:
    flag = "--in" if kind == "input" else "--out"
    return PortError(f"this MIDI API has no virtual ports: name an existing {kind} port with {flag} "
                     "(see `mididuet ports`), or install a loopback driver such as loopMIDI")
