"""Listing ports: once (``mididuet ports``), or again and again from the playing loop."""

from __future__ import annotations

import rtmidi

from .api import LIBRARY_ERRORS, MidiApi, rtmidi_api, translate


def list_ports(api: MidiApi) -> tuple[list[str], list[str]]:
    """Names of the ports we can read from (inputs) and send to (outputs).

    Raises :class:`PortError` when the API cannot be reached.
    """
    try:
        return list(api.backend.get_input_names()), list(api.backend.get_output_names())
    except LIBRARY_ERRORS as err:
        raise translate(api, err) from err


class PortLister:
    """Lists ports again and again, cheaply, through two long-lived rtmidi objects.

    mido's ``get_input_names``/``get_output_names`` create and delete two rtmidi clients
    per call, far too slow for the playing loop every few seconds; kept objects answer at
    once. They open no port, so they show in no port list.
    """

    def __init__(self, api: MidiApi) -> None:
        self.api = api
        rtapi = rtmidi_api(api)
        try:
            self._in = rtmidi.MidiIn(rtapi=rtapi, name="mididuet watch")
            self._out = rtmidi.MidiOut(rtapi=rtapi, name="mididuet watch")
        except LIBRARY_ERRORS as err:
            raise translate(api, err) from err

    def names(self) -> tuple[list[str], list[str]]:
        """(inputs, outputs), as :func:`list_ports` names them. Raises :class:`PortError`."""
        try:
            return list(self._in.get_ports()), list(self._out.get_ports())
        except LIBRARY_ERRORS as err:
            raise translate(self.api, err) from err

    def close(self) -> None:
        self._in.delete()
        self._out.delete()
