"""Options of the reliability suite: ``--long`` runs the hour-long soak.

``pytest_addoption`` in a conftest below the tests' root is only seen when pytest starts
from this directory, so run the long variants as ``pytest tests/reliability --long``;
``MIDIDUET_LONG=1`` does the same from anywhere (``make test PYTEST_ARGS=...`` included).
"""

from __future__ import annotations

import os

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--long", action="store_true", default=False,
                     help="run the long reliability variants (an hour of simulated playing)")


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """True when the long variants were asked for (``--long`` or ``MIDIDUET_LONG=1``)."""
    try:
        asked = bool(request.config.getoption("--long"))
    except ValueError:  # the option is unknown when pytest started above this directory
        asked = False
    return asked or os.environ.get("MIDIDUET_LONG") == "1"
