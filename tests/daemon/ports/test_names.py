"""Port names: what a user writes and the one port it means (no MIDI API needed)."""

from __future__ import annotations

import pytest

from mididuet.daemon.ports.api import PortError
from mididuet.daemon.ports.names import match_port

PORTS = ["Keystation 49:Keystation 49 MIDI 1 20:0", "fsynth:midi_00", "fsynth:midi_01", "Midi Through:Port-0"]


def test_a_part_of_the_name_in_any_case_matches() -> None:
    assert match_port("keystation", PORTS, "input") == PORTS[0]
    assert match_port("THROUGH", PORTS, "input") == PORTS[3]


def test_an_exact_name_wins_over_the_names_it_is_part_of() -> None:
    names = ["synth", "synth 2", "synth 3"]
    assert match_port("synth", names, "output") == "synth"


def test_a_regular_expression_after_re_selects_exactly() -> None:
    assert match_port("re:^fsynth:midi_01$", PORTS, "output") == "fsynth:midi_01"
    assert match_port("re:MIDI_0+$", PORTS, "output") == "fsynth:midi_00", "case-insensitive, searched"


def test_no_match_lists_the_ports_that_exist() -> None:
    with pytest.raises(PortError) as caught:
        match_port("roland", PORTS, "input")
    message = str(caught.value)
    assert message.startswith("no input port matches 'roland'. Input ports: ")
    assert all(repr(name) in message for name in PORTS)


def test_no_ports_at_all_says_none() -> None:
    with pytest.raises(PortError, match="Output ports: none"):
        match_port("fluid", [], "output")


def test_an_ambiguous_name_lists_what_it_matches_and_says_what_to_do() -> None:
    with pytest.raises(PortError) as caught:
        match_port("fsynth", PORTS, "output")
    message = str(caught.value)
    assert "ambiguous" in message and "'fsynth:midi_00'; 'fsynth:midi_01'" in message
    assert "Give more of the name, or a regex with re:" in message


def test_a_bad_regular_expression_is_a_port_error_not_a_crash() -> None:
    with pytest.raises(PortError, match=r"bad regular expression in input port 're:\('"):
        match_port("re:(", PORTS, "input")
