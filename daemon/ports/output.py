"""The output port: where mididuet plays (a synth or a DAW), through mido's rtmidi backend."""

from __future__ import annotations

from typing import Any

from .api import LIBRARY_ERRORS, MidiApi, no_virtual, translate
from .listing import list_ports
from .names import match_port

VIRTUAL_OUT = "mididuet out"


def open_output(api: MidiApi, query: str | None, names: list[str] | None = None) -> Any:
    """Open the output port ``query`` means (a virtual "mididuet out" when None).

    ``names``: the output ports, when the caller has just listed them. Raises :class:`PortError`.
    """
    try:
        if query is None:
            if not api.virtual_ports:
                raise no_virtual("output")
            return api.backend.open_output(VIRTUAL_OUT, client_name=VIRTUAL_OUT)
        name = match_port(query, list_ports(api)[1] if names is None else names, "output")
        return api.backend.open_output(name)
    except LIBRARY_ERRORS as err:
        raise translate(api, err) from err
