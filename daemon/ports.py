"""MIDI ports: choose the MIDI API, list ports, match names, open ports.

The API is chosen once, explicitly, in a :class:`MidiApi`: outputs and listings go
through its ``mido.Backend`` object (never mido's global ``set_backend``), so tests can
run two backends side by side; the input is opened with python-rtmidi on the same API
(:class:`RawInput`), so that rtmidi's thread hands over raw bytes and no Python parsing.
The API is, in order: ``--api``, the API named in ``MIDO_BACKEND``
(``mido.backends.rtmidi/UNIX_JACK``), the platform's own (ALSA on Linux, CoreMIDI on
macOS, Windows MultiMedia on Windows). python-rtmidi picks ALSA when no API is given, so
on a JACK-only machine the API must be named (FIELD-NOTES).

Port names match by case-insensitive substring, or by a regular expression when the
name starts with ``re:`` (``re:^fsynth:midi_0[0-9]$``). An unknown or ambiguous name is a
:class:`PortError` listing the ports that exist. Library errors (rtmidi's ``SystemError``,
mido's ``OSError``/``ValueError``) are translated here into :class:`PortError` with a
message that says what to do.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mido
import rtmidi

from daemon.errors import MididuetError
from daemon.midibytes import SYSEX_END, SYSEX_START

log = logging.getLogger("mididuet.ports")
RTMIDI_MODULE = "mido.backends.rtmidi"
# Our API names (the --api choices) and rtmidi's.
APIS = {"jack": "UNIX_JACK", "alsa": "LINUX_ALSA", "coremidi": "MACOSX_CORE", "winmm": "WINDOWS_MM"}
_API_BY_RTMIDI = {rt: ours for ours, rt in APIS.items()}
REGEX_PREFIX = "re:"
VIRTUAL_IN = "mididuet in"
VIRTUAL_OUT = "mididuet out"
JACK_ENV_HINT = (
    "start JACK first (e.g. `jackd -d alsa` or QjackCtl), or choose another API with --api"
)


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


def _translate(api: MidiApi, err: BaseException) -> PortError:
    """A library error turned into advice for the user."""
    text = str(err).strip() or type(err).__name__
    if api.name == "jack" and "server not running" in text:
        return PortError(f"cannot reach a JACK server ({text}): {JACK_ENV_HINT}; "
                         "JACK_DEFAULT_SERVER names the server to use")
    if api.name == "alsa" and "ALSA" in text:
        return PortError(f"cannot open the ALSA sequencer ({text}): is the snd-seq kernel module "
                         "loaded (`sudo modprobe snd-seq`)? Or use JACK: --api jack")
    return PortError(f"{api.name} MIDI: {text}")


# What rtmidi and mido raise for a port or API problem; anything else is a bug.
_LIBRARY_ERRORS = (rtmidi.RtMidiError, OSError, ValueError, RuntimeError)


def list_ports(api: MidiApi) -> tuple[list[str], list[str]]:
    """Names of the ports we can read from (inputs) and send to (outputs).

    Raises :class:`PortError` when the API cannot be reached.
    """
    try:
        return list(api.backend.get_input_names()), list(api.backend.get_output_names())
    except _LIBRARY_ERRORS as err:
        raise _translate(api, err) from err


def match_port(query: str, names: list[str], kind: str) -> str:
    """The one name in ``names`` that ``query`` means.

    ``query`` is a case-insensitive substring, or a regular expression after ``re:``
    (searched, case-insensitive). An exact name always wins over substring matches.
    Raises :class:`PortError` for no match or several, listing the ``kind`` ports.
    """
    if query.startswith(REGEX_PREFIX):
        try:
            pattern = re.compile(query[len(REGEX_PREFIX):], re.IGNORECASE)
        except re.error as err:
            raise PortError(f"bad regular expression in {kind} port {query!r}: {err}") from None
        found = [n for n in names if pattern.search(n)]
    elif query in names:
        return query
    else:
        found = [n for n in names if query.casefold() in n.casefold()]
    if len(found) == 1:
        return found[0]
    listing = "; ".join(repr(n) for n in names) if names else "none"
    if not found:
        raise PortError(f"no {kind} port matches {query!r}. {kind.capitalize()} ports: {listing}")
    matches = "; ".join(repr(n) for n in found)
    raise PortError(f"{kind} port {query!r} is ambiguous: it matches {matches}. "
                    f"Give more of the name, or a regex with {REGEX_PREFIX}...")


def _no_virtual(kind: str) -> PortError:
    flag = "--in" if kind == "input" else "--out"
    return PortError(f"this MIDI API has no virtual ports: name an existing {kind} port with {flag} "
                     "(see `mididuet ports`), or install a loopback driver such as loopMIDI")


# What RtMidi delivers from an input: sysex and clock (the engine records the one and can
# follow the other); active sensing is filtered in C (mido's choice too: it only says
# "still here", 3 times a second from some keyboards).
_IGNORE = {"sysex": False, "timing": False, "active_sense": True}


# Longer than a JACK cycle (1.3 ms at 64 frames, 48 kHz; 21 ms at 1,024): time for a callback
# already waiting for the GIL to run once the port is closed.
CALLBACK_DRAIN_S = 0.03
SYSEX_CLOSER = "mididuet sysex-closer"  # the closer's JACK client; its port is "out"
EMPTY_SYSEX = [SYSEX_START, SYSEX_END]  # what the intake drops uncounted (daemon.intake)
_NO_CLOSER = "no sysex closer ({}): a sysex cut short would hold the input until an F7"


class SysexCloser:
    """A JACK output of our own, connected to our input only, that ends a sysex left open.

    RtMidi's JACK input joins every event after a sysex without its F7 (a cable pulled
    mid-dump, a device reset) into that sysex, and delivers nothing until some event ends
    with F7: the keyboard goes deaf, and a key released meanwhile sounds on. No Python
    code sees those events, so the daemon cannot tell a held lump from silence; but any
    event RtMidi delivers proves nothing is held. So after a quiet spell the runner sends
    an empty sysex (F0 F7) into its own input (:meth:`close_sysex`): with nothing open it
    arrives as an empty sysex, which the intake drops; with a sysex open it ends it, and
    the held lump arrives (:func:`daemon.midibytes.split_lump` cuts it up again). A long
    sysex dump is cut short too; mididuet never uses sysex, and its tail is dropped as
    malformed.
    """

    def __init__(self, api: MidiApi) -> None:
        self._rt = rtmidi.MidiOut(rtapi=_rtmidi_api(api), name=SYSEX_CLOSER)

    def destinations(self) -> list[str]:
        """The input ports there are now (to tell, after opening ours, which is ours)."""
        return list(self._rt.get_ports())

    def connect(self, before: list[str]) -> str | None:
        """Connect to the one input port that is new since ``before``; its name, or None
        (and no connection) when not exactly one is new."""
        after = self._rt.get_ports()
        new = [name for name in after if name not in before]
        if len(new) != 1:
            return None
        self._rt.open_port(after.index(new[0]), "out")
        return new[0]

    def close_sysex(self) -> None:
        self._rt.send_message(EMPTY_SYSEX)

    def close(self) -> None:
        self._rt.close_port()
        self._rt.delete()


class RawInput:
    """An input port opened with python-rtmidi directly: ``callback(event, data)`` gets
    rtmidi's raw ``([bytes...], delta_s)`` on rtmidi's thread, no ``mido.Message`` built.

    mido's rtmidi port parses and checks every message in Python on that thread (JACK's
    process thread, holding the GIL); the loop then waits behind each of those calls. Here
    the bytes go out as they came and the loop parses them (:mod:`daemon.midibytes`).
    The callback is set before the port opens, so nothing is queued unseen.

    In JACK the input comes with a :class:`SysexCloser` (:meth:`close_sysex`); when it
    cannot be connected, the input works without it and a warning says so.
    """

    def __init__(self, api: MidiApi, name: str, callback: Callable[[Any, Any], Any],
                 virtual: bool = False) -> None:
        # A virtual port's client is named after it, as mido does with client_name; a
        # connecting client keeps rtmidi's default name, as with mido.
        self._rt = rtmidi.MidiIn(rtapi=_rtmidi_api(api), name=name if virtual else None)
        self._closer: SysexCloser | None = None
        closer: SysexCloser | None = None
        try:
            closer, before = self._new_closer(api)
            self._rt.ignore_types(**_IGNORE)
            self._rt.set_callback(callback)
            if virtual:
                self._rt.open_virtual_port(name)
            else:
                # Index in this client's own list: the caller's names came from another one.
                names = self._rt.get_ports()
                if name not in names:
                    raise OSError(f"unknown port {name!r}")
                self._rt.open_port(names.index(name))
        except BaseException:
            self._rt.delete()
            if closer is not None:
                closer.close()
            raise
        self.name = name
        if closer is not None:
            self._closer = self._connect_closer(closer, before)

    @staticmethod
    def _new_closer(api: MidiApi) -> tuple[SysexCloser | None, list[str]]:
        if api.name != "jack":
            return None, []  # RtMidi's other inputs are not tested here (see the README)
        try:
            closer = SysexCloser(api)
            return closer, closer.destinations()
        except _LIBRARY_ERRORS as err:
            log.warning(_NO_CLOSER.format(err))
            return None, []

    def _connect_closer(self, closer: SysexCloser, before: list[str]) -> SysexCloser | None:
        try:
            if closer.connect(before) is not None:
                return closer
            log.warning(_NO_CLOSER.format("could not tell our input port among the new ones"))
        except _LIBRARY_ERRORS as err:
            log.warning(_NO_CLOSER.format(err))
        closer.close()
        return None

    def close_sysex(self) -> None:
        """End a sysex RtMidi may be holding open (:class:`SysexCloser`); never raises."""
        if self._closer is not None:
            try:
                self._closer.close_sysex()
            except _LIBRARY_ERRORS as err:
                log.debug("sysex closer: %s", err)

    def close(self) -> None:
        """Close the port, let a callback in flight finish, then drop the callback and the
        client.

        python-rtmidi holds the GIL through every RtMidi call, and its callback takes the
        GIL on JACK's thread. Closing the JACK client stops that thread and waits for it:
        with an event's callback waiting for the GIL, the two would wait for each other for
        ever (the likely cause of a daemon seen ignoring SIGTERM until killed, once in a
        test run; read from python-rtmidi's source, not caught in a debugger). So: unregister the port
        (no event after this cycle), sleep (the GIL is free: a waiting callback runs and
        returns), and only then cancel the callback (python-rtmidi frees it at once) and
        close the client."""
        if self._closer is not None:
            self._closer.close()
            self._closer = None
        self._rt.close_port()
        time.sleep(CALLBACK_DRAIN_S)
        self._rt.cancel_callback()
        self._rt.delete()


def _rtmidi_api(api: MidiApi) -> int:
    return getattr(rtmidi, f"API_{APIS[api.name]}")


def open_input(api: MidiApi, query: str | None, callback: Callable[[Any, Any], Any],
               names: list[str] | None = None) -> RawInput:
    """Open the input port ``query`` means (a virtual "mididuet in" when None).

    ``callback(event, data)`` is python-rtmidi's: it gets raw bytes on rtmidi's thread
    (:class:`RawInput`). ``names``: the input ports, when the caller has just listed them
    (saves a listing). Raises :class:`PortError`.
    """
    try:
        if query is None:
            if not api.virtual_ports:
                raise _no_virtual("input")
            # In JACK the client is named too, so the port shows up as "mididuet in:mididuet in".
            return RawInput(api, VIRTUAL_IN, callback, virtual=True)
        name = match_port(query, list_ports(api)[0] if names is None else names, "input")
        return RawInput(api, name, callback)
    except _LIBRARY_ERRORS as err:
        raise _translate(api, err) from err


def open_output(api: MidiApi, query: str | None, names: list[str] | None = None) -> Any:
    """Open the output port ``query`` means (a virtual "mididuet out" when None).

    ``names``: the output ports, when the caller has just listed them. Raises :class:`PortError`.
    """
    try:
        if query is None:
            if not api.virtual_ports:
                raise _no_virtual("output")
            return api.backend.open_output(VIRTUAL_OUT, client_name=VIRTUAL_OUT)
        name = match_port(query, list_ports(api)[1] if names is None else names, "output")
        return api.backend.open_output(name)
    except _LIBRARY_ERRORS as err:
        raise _translate(api, err) from err


class PortLister:
    """Lists ports again and again, cheaply, through two long-lived rtmidi objects.

    mido's ``get_input_names``/``get_output_names`` create and delete two rtmidi clients
    per call: ~70 ms in JACK (measured), too long for the playing loop every few seconds.
    Kept objects answer in ~0.25 ms. They open no port, so they show in no port list.
    """

    def __init__(self, api: MidiApi) -> None:
        self.api = api
        rtapi = _rtmidi_api(api)
        try:
            self._in = rtmidi.MidiIn(rtapi=rtapi, name="mididuet watch")
            self._out = rtmidi.MidiOut(rtapi=rtapi, name="mididuet watch")
        except _LIBRARY_ERRORS as err:
            raise _translate(api, err) from err

    def names(self) -> tuple[list[str], list[str]]:
        """(inputs, outputs), as :func:`list_ports` names them. Raises :class:`PortError`."""
        try:
            return list(self._in.get_ports()), list(self._out.get_ports())
        except _LIBRARY_ERRORS as err:
            raise _translate(self.api, err) from err

    def close(self) -> None:
        self._in.delete()
        self._out.delete()
