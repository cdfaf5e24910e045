"""The input port, opened with python-rtmidi so that rtmidi's thread hands over raw bytes.

In JACK it comes with a :class:`SysexCloser`, which ends a sysex RtMidi holds open.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import rtmidi

from ..music.midi import END_OF_EXCLUSIVE, SYSTEM_EXCLUSIVE
from .api import LIBRARY_ERRORS, MidiApi, no_virtual, rtmidi_api, translate
from .listing import list_ports
from .names import match_port

log = logging.getLogger("mididuet.ports")
VIRTUAL_IN = "mididuet in"


# What RtMidi delivers from an input: sysex and clock (the engine records the one and can
# follow the other); active sensing is filtered in C (mido's choice too: it only says
# "still here", 3 times a second from some keyboards).
_IGNORE = {"sysex": False, "timing": False, "active_sense": True}


# Longer than a JACK cycle at the usual periods: time for a callback already waiting for
# the GIL to run once the port is closed.
CALLBACK_DRAIN_S = 0.03
SYSEX_CLOSER = "mididuet sysex-closer"  # the closer's JACK client; its port is "out"
EMPTY_SYSEX = [SYSTEM_EXCLUSIVE, END_OF_EXCLUSIVE]  # what the intake drops uncounted (listen.intake)
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
    the held lump arrives (:func:`..listen.parse.split_lump` cuts it up again). A long
    sysex dump is cut short too; mididuet never uses sysex, and its tail is dropped as
    malformed.
    """

    def __init__(self, api: MidiApi) -> None:
        self._rt = rtmidi.MidiOut(rtapi=rtmidi_api(api), name=SYSEX_CLOSER)

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
    the bytes go out as they came and the loop parses them (:mod:`..listen.parse`).
    The callback is set before the port opens, so nothing is queued unseen.

    In JACK the input comes with a :class:`SysexCloser` (:meth:`close_sysex`); when it
    cannot be connected, the input works without it and a warning says so.
    """

    def __init__(self, api: MidiApi, name: str, callback: Callable[[Any, Any], Any],
                 virtual: bool = False) -> None:
        # A virtual port's client is named after it, as mido does with client_name; a
        # connecting client keeps rtmidi's default name, as with mido.
        self._rt = rtmidi.MidiIn(rtapi=rtmidi_api(api), name=name if virtual else None)
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
        except LIBRARY_ERRORS as err:
            log.warning(_NO_CLOSER.format(err))
            return None, []

    def _connect_closer(self, closer: SysexCloser, before: list[str]) -> SysexCloser | None:
        try:
            if closer.connect(before) is not None:
                return closer
            log.warning(_NO_CLOSER.format("could not tell our input port among the new ones"))
        except LIBRARY_ERRORS as err:
            log.warning(_NO_CLOSER.format(err))
        closer.close()
        return None

    def close_sysex(self) -> None:
        """End a sysex RtMidi may be holding open (:class:`SysexCloser`); never raises."""
        if self._closer is not None:
            try:
                self._closer.close_sysex()
            except LIBRARY_ERRORS as err:
                log.debug("sysex closer: %s", err)

    def close(self) -> None:
        """Close the port, let a callback in flight finish, then drop the callback and the
        client.

        python-rtmidi holds the GIL through every RtMidi call, and its callback takes the
        GIL on JACK's thread; closing the JACK client waits for that thread, so a callback
        waiting for the GIL would deadlock the two. Hence: unregister the port (no event
        after this cycle), sleep with the GIL free (a waiting callback runs and returns),
        then cancel the callback and close the client."""
        if self._closer is not None:
            self._closer.close()
            self._closer = None
        self._rt.close_port()
        time.sleep(CALLBACK_DRAIN_S)
        self._rt.cancel_callback()
        self._rt.delete()


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
                raise no_virtual("input")
            # In JACK the client is named too, so the port shows up as "mididuet in:mididuet in".
            return RawInput(api, VIRTUAL_IN, callback, virtual=True)
        name = match_port(query, list_ports(api)[0] if names is None else names, "input")
        return RawInput(api, name, callback)
    except LIBRARY_ERRORS as err:
        raise translate(api, err) from err
