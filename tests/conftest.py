"""Shared fixtures: a private JACK server per session, test MIDI clients, the daemon;
the same on a private PipeWire (its JACK, with a python-rtmidi built against the system's
libjack, and the clients in a child process).

The JACK and PipeWire fixtures are only started by tests that ask for them. When jackd
or PipeWire is missing they skip with the reason, or fail when ``MIDIDUET_REQUIRE_JACK=1``
(CI sets it, so a broken CI image cannot pass by skipping every end-to-end test).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.helpers.bundles import make_bundle
from tests.helpers.jack import DaemonProcess, JackServer, Monitor, Player, environment, jack_available, require
from tests.helpers.pipewire import PipeWireServer, pipewire_available, system_rtmidi
from tests.helpers.remote import RemoteClients


@pytest.fixture(scope="session")
def jack_server() -> Iterator[JackServer]:
    """A running jackd (dummy driver, realtime, 48 kHz, period ``TEST_PERIOD``) under a unique name;
    this process's environment points libjack and mido at it for the whole session."""
    require(jack_available())
    server = JackServer()
    server.start()
    try:
        with environment(server.env):
            yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small real ONNX bundle (18 tokens) that loads in milliseconds."""
    return make_bundle(tmp_path_factory.mktemp("models") / "tiny.onnx", seed=3)


def _unique(prefix: str) -> str:
    # A fresh client name per test: a port left behind by an earlier test never matches.
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def monitor(jack_server: JackServer) -> Iterator[Monitor]:
    """A JACK input that records what the daemon plays, stamped on arrival."""
    mon = Monitor(client=_unique("mdtest-monitor"))
    yield mon
    mon.close()


@pytest.fixture
def player(jack_server: JackServer) -> Iterator[Player]:
    """A JACK output that plays into the daemon: the test's keyboard."""
    out = Player(client=_unique("mdtest-player"))
    yield out
    out.close()


DaemonFactory = Callable[..., DaemonProcess]


def run_args(flags: tuple[str, ...], model: Path | None, ports: tuple[str, str] | None, control: Path) -> list[str]:
    """``mididuet run``'s arguments for a test daemon: JACK, the ports (in, out) unless
    None, the model, and a control socket of its own unless the flags name one (daemons of
    parallel sessions must not find each other's)."""
    args = ["--api", "jack", *flags]
    if "--control" not in flags:
        args += ["--control", str(control)]
    if ports is not None:
        args = ["--in", ports[0], "--out", ports[1], *args]
    return args if model is None else ["--model", str(model), *args]


def control_of(flags: tuple[str, ...], control: Path) -> Path:
    return Path(flags[flags.index("--control") + 1]) if "--control" in flags else control


def _started(daemon: DaemonProcess, flags: tuple[str, ...], control: Path, ready: bool,
             started: list[DaemonProcess]) -> DaemonProcess:
    """A factory's daemon, noted for the fixture's teardown, with its control socket."""
    daemon.control = control_of(flags, control)
    started.append(daemon)
    if ready:
        daemon.wait_ready()
    return daemon


@pytest.fixture
def start_daemon(jack_server: JackServer, tiny_model: Path, player: Player,
                 monitor: Monitor, tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonFactory]:
    """``start_daemon(*flags, model=..., ready=True)``: ``mididuet run`` wired from the
    test's player to its monitor, with the tiny model, waited on until ready. Each gets a
    control socket of its own (``daemon.control``) unless the flags name one: daemons
    of parallel sessions must not find each other's."""
    started: list[DaemonProcess] = []

    def start(*flags: str, model: Path | None = tiny_model, ready: bool = True,
              ports: bool = True) -> DaemonProcess:
        control = tmp_path_factory.mktemp("control") / "control.sock"
        daemon = DaemonProcess(run_args(flags, model, (player.name, monitor.name) if ports else None, control),
                               jack_server.env)
        return _started(daemon, flags, control, ready, started)

    yield start
    for daemon in started:
        daemon.stop()


@pytest.fixture(scope="session")
def rtmidi_for_pipewire() -> Path:
    """python-rtmidi built against the system's libjack (``make rtmidi-system``), for PYTHONPATH."""
    require(pipewire_available())
    try:
        return system_rtmidi()
    except RuntimeError as err:
        require(f"python-rtmidi cannot be built against the system's libjack: {err}")
        raise


@pytest.fixture(scope="module")
def pipewire_server(rtmidi_for_pipewire: Path) -> Iterator[PipeWireServer]:
    """A private headless PipeWire (dummy driver) at the suite's quantum, for one test module:
    its real-time loop must not run under the other modules' timing tests."""
    server = PipeWireServer(rtmidi=rtmidi_for_pipewire)
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def pw_clients(pipewire_server: PipeWireServer) -> Iterator[RemoteClients]:
    """A keyboard and a monitor on PipeWire's JACK, in a child process (``.player``, ``.monitor``)."""
    clients = RemoteClients(pipewire_server.env, _unique("mdtest-pw"))
    yield clients
    clients.close()


@pytest.fixture
def pw_start_daemon(pipewire_server: PipeWireServer, tiny_model: Path, pw_clients: RemoteClients,
                    tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaemonFactory]:
    """``start_daemon`` on PipeWire: ``pw-jack -p QUANTUM mididuet run``, wired from the
    child's player to its monitor, with the tiny model, waited on until ready."""
    started: list[DaemonProcess] = []

    def start(*flags: str, model: Path | None = tiny_model, ready: bool = True, ports: bool = True) -> DaemonProcess:
        control = tmp_path_factory.mktemp("control") / "control.sock"
        in_out = (pw_clients.player.name, pw_clients.monitor.name) if ports else None
        daemon = DaemonProcess(run_args(flags, model, in_out, control), pipewire_server.base_env,
                               wrapper=pipewire_server.pw_jack)
        return _started(daemon, flags, control, ready, started)

    yield start
    for daemon in started:
        daemon.stop()


# One rerun for the tests that time real clients on a real server (and the soak's clock):
# on the 2-core CI machine one such test in a few hundred loses a MIDI event or a deadline
# to the machine (a JACK cycle missed, PipeWire's own drops), never the same one twice in
# a row. A failure twice running fails the suite; every rerun is listed in the summary
# ("RERUN"), and docs/reliability.md counts them.
# pytest-rerunfailures (the test extra) must be installed: --strict-markers refuses `flaky` without it.
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("jack") or item.get_closest_marker("timing"):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=1))


_RERUNS: list[pytest.TestReport] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.outcome == "rerun":
        _RERUNS.append(report)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """What each rerun test's first attempt failed on (the plugin lists only the names)."""
    for report in _RERUNS:
        terminalreporter.write_sep("-", f"first attempt of {report.nodeid} ({report.when})")
        terminalreporter.write_line(report.longreprtext[-4000:])


def pytest_addoption(parser: pytest.Parser) -> None:
    # Here, at the tests' root, so that `pytest --long` and `make test PYTEST_ARGS=--long`
    # see it: pytest reads options only from the conftests it loads at start.
    parser.addoption("--long", action="store_true", default=False,
                     help="also run the long variants: an hour of simulated playing, a 30 s flood")


@pytest.fixture(scope="session")
def long_run(request: pytest.FixtureRequest) -> bool:
    """True when the long variants were asked for (``--long`` or ``MIDIDUET_LONG=1``)."""
    return bool(request.config.getoption("--long")) or os.environ.get("MIDIDUET_LONG") == "1"
