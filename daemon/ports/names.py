"""Port names: what the user wrote (``--in keystation``) and the one port it means.

Port names match by case-insensitive substring, or by a regular expression when the
name starts with ``re:`` (``re:^fsynth:midi_0[0-9]$``). An unknown or ambiguous name is a
:class:`~.api.PortError` listing the ports that exist. Pure functions: no MIDI API needed.
"""

from __future__ import annotations

import re

from .api import PortError

REGEX_PREFIX = "re:"


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
