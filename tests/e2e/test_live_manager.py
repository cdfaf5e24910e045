"""The shipped unit under a live systemd user manager: every promise of
``systemd/mididuet.service`` checked where it is kept, with a JACK server as a dependency.

The manager is the test's own (:class:`tests.helpers.systemd.UserManager`): a cgroup of
its own, a private mount namespace, PID 1's and this process's cgroups checked before and
after. The unit is the one ``mididuet service install`` writes; a drop-in adds only what
the test needs: ``Requires=`` the JACK unit and its server name, the test's config home,
no core dumps, a probe that tries an ``AF_INET`` socket inside the unit's sandbox
(``ExecStartPost`` runs under the same restrictions as ``ExecStart``), and a shorter
watchdog: ``WatchdogSec=2`` instead of the shipped 10 s, so that the SIGSTOP step waits
2 s, not 10, for the same timeout path (``MIDIDUET_SERVICE_TEST_SHIPPED_WATCHDOG=1``
keeps the shipped 10 s, to measure it). ``RestartSec=5`` stays the shipped one.

Each step's time is printed (``pytest -s``) and recorded in docs/service.md.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mididuet.daemon.music.units import NS_PER_S
from mididuet.daemon.play.rhythm import MAX_NOTE_NS
from mididuet.daemon.service import systemd as service
from tests.helpers.bundles import make_bundle
from tests.helpers.jack import JACK_BACKEND, REPO, TEST_PERIOD, hanging, onset_groups, poll, quiet_for, require
from tests.helpers.pipewire import TEST_QUANTUM, pipewire_available, pw_jack_dir
from tests.helpers.remote import RemoteClients
from tests.helpers.systemd import UserManager, unavailable

pytestmark = pytest.mark.jack

JACK_UNIT = "mdtest-jack.service"
UNIT = service.UNIT_NAME
SHIPPED_WATCHDOG = os.environ.get("MIDIDUET_SERVICE_TEST_SHIPPED_WATCHDOG") == "1"
INET_PROBE = """\
import socket, sys
try:
    socket.socket(socket.AF_INET, socket.SOCK_STREAM).close()
    result = "allowed"
except OSError as err:
    result = f"refused {err.errno}"
with open(sys.argv[1], "a") as out:
    out.write(result + "\\n")
"""


@pytest.fixture
def manager(tmp_path: Path) -> Iterator[UserManager]:
    require(unavailable())
    user = UserManager(tmp_path / "user")
    yield user
    user.stop()


def install(user: UserManager) -> None:
    """``mididuet service install`` into the manager's config home: the shipped unit."""
    env = {"HOME": str(user.home), "XDG_CONFIG_HOME": str(user.config), "PATH": os.environ["PATH"]}
    subprocess.run([sys.executable, "-m", "mididuet.daemon", "service", "install"], cwd=REPO, env=env,
                   capture_output=True, text=True, timeout=30, check=True)
    installed = (user.unit_dir / UNIT).read_text()
    assert installed == service.render_unit(service.script_path()), "the unit is the shipped one"


def write_units(user: UserManager, server: str, probe: Path, probe_out: Path) -> None:
    (user.unit_dir / JACK_UNIT).write_text(f"""\
[Unit]
Description=a private jackd for mididuet's test
[Service]
Environment=JACK_NO_START_SERVER=1
ExecStart=/usr/bin/env jackd --realtime --name {server} -d dummy -r 48000 -p {TEST_PERIOD}
ExecStartPost=/usr/bin/env jack_wait -s {server} -w -t 10
""")
    dropin = user.unit_dir / f"{UNIT}.d" / "test.conf"
    dropin.parent.mkdir()
    dropin.write_text(f"""\
[Unit]
Requires={JACK_UNIT}
After={JACK_UNIT}
[Service]
Environment=JACK_DEFAULT_SERVER={server} HOME={user.home} XDG_CONFIG_HOME={user.config}
LimitCORE=0
{"" if SHIPPED_WATCHDOG else "WatchdogSec=2"}
ExecStartPost={sys.executable} {probe} {probe_out}
""")


def write_config(user: UserManager, clients: RemoteClients, model: Path, channel: int) -> None:
    (user.config / "mididuet" / "config.toml").write_text(f"""\
in = "{clients.player.name}"
out = "{clients.monitor.name}"
api = "jack"
model = "{model}"
channel = {channel}
phrase-gap = 150.0
bpm = 400.0
answer-tokens = 4
seed = 1
retry = 0.2
""")


def timed(step: str, times: dict[str, float], start: float) -> None:
    times[step] = time.monotonic() - start
    print(f"live manager: {step} {times[step]:.3f} s", flush=True)


def answers(clients: RemoteClients, channel: int) -> None:
    """A phrase in, an answer out on ``channel`` (1-based), every note released."""
    monitor = clients.monitor
    monitor.clear()
    clients.player.play([60, 62, 64])
    assert poll(lambda: len(onset_groups(monitor.note_ons())) >= 3, 5), monitor.messages
    # The shipped model plays each note for its predicted length, up to the cap.
    assert poll(lambda: not hanging(monitor.messages), MAX_NOTE_NS / NS_PER_S + 2), monitor.messages
    assert quiet_for(monitor, 0.3, 5)
    assert {m.channel for _, m in monitor.of_type("note_on", "note_off")} == {channel - 1}


def test_the_installed_unit_keeps_its_promises_under_a_live_manager(manager: UserManager, tmp_path: Path,
                                                                     tiny_model: Path) -> None:
    user = manager
    times: dict[str, float] = {}
    install(user)
    server = f"mdtest-unit-{os.getpid()}-{os.urandom(3).hex()}"
    probe, probe_out = tmp_path / "inet_probe.py", tmp_path / "inet.txt"
    probe.write_text(INET_PROBE)
    write_units(user, server, probe, probe_out)

    started = time.monotonic()
    user.start()
    timed("manager running", times, started)
    clients: RemoteClients | None = None
    try:
        user.systemctl("start", JACK_UNIT)
        clients = RemoteClients({"JACK_DEFAULT_SERVER": server, "JACK_NO_START_SERVER": "1",
                                 "MIDO_BACKEND": JACK_BACKEND}, f"mdtest-unit-{os.urandom(3).hex()}")
        write_config(user, clients, tiny_model, channel=3)

        # start → READY: Type=notify, so `start` returns once mididuet sent READY=1.
        started = time.monotonic()
        user.systemctl("start", UNIT)
        timed("start to READY", times, started)
        shown = user.show(UNIT, "ActiveState", "SubState", "MainPID", "StatusText", "NRestarts")
        assert (shown["ActiveState"], shown["SubState"]) == ("active", "running"), shown
        pid = int(shown["MainPID"])
        assert user.owns(pid), f"MainPID {pid} is not in the test's cgroup"
        status = poll(lambda: user.show(UNIT, "StatusText")["StatusText"].startswith("playing: ") and
                      user.show(UNIT, "StatusText")["StatusText"], 5)
        assert status and f"in '{clients.player.name}'" in status and "model tiny.onnx" in status, status
        answers(clients, channel=3)

        # The hardening, seen by the kernel and tried from inside the unit's sandbox.
        proc_status = Path(f"/proc/{pid}/status").read_text()
        assert "\nNoNewPrivs:\t1\n" in proc_status and "\nSeccomp:\t2\n" in proc_status
        assert probe_out.read_text().split() == ["refused", "97"], "AF_INET must fail with EAFNOSUPPORT"
        outside = tmp_path / "inet-outside.txt"
        subprocess.run([sys.executable, str(probe), str(outside)], check=True, timeout=30)
        assert outside.read_text().strip() == "allowed", "the probe can tell: outside the unit it may"

        # reload: the new config and model taken, same process.
        make_bundle(tmp_path / "tiny2.onnx", seed=4)
        write_config(user, clients, tmp_path / "tiny2.onnx", channel=5)
        started = time.monotonic()
        user.systemctl("reload", UNIT)
        assert poll(lambda: "model tiny2.onnx" in user.show(UNIT, "StatusText")["StatusText"], 5)
        timed("reload (to the new model in STATUS)", times, started)
        assert int(user.show(UNIT, "MainPID")["MainPID"]) == pid, "reload keeps the process"
        answers(clients, channel=5)

        # SIGKILL → Restart=on-failure, after RestartSec=5.
        assert user.owns(pid)
        started = time.monotonic()
        os.kill(pid, signal.SIGKILL)
        pid = restarted(user, pid)
        timed("SIGKILL to restarted and READY", times, started)
        assert user.show(UNIT, "NRestarts")["NRestarts"] == "1"

        # SIGSTOP → no more WATCHDOG=1 → systemd's watchdog kills it → restarted.
        assert user.owns(pid)
        started = time.monotonic()
        os.kill(pid, signal.SIGSTOP)
        assert poll(lambda: user.show(UNIT, "ActiveState")["ActiveState"] != "active", 15, 0.02)
        timed("SIGSTOP to watchdog timeout", times, started)
        # The manager's own verdict, held until the restart 5 s on (its journal line, "Watchdog
        # timeout", reached the test's journal late or not at all in one CI run, twice running).
        assert poll(lambda: user.show(UNIT, "Result")["Result"] == "watchdog"
                    or "Watchdog timeout" in user.journal("--user-unit", UNIT), 5, 0.02), user.journal()[-3000:]
        pid = restarted(user, pid)
        timed("SIGSTOP to restarted and READY", times, started)
        assert user.show(UNIT, "NRestarts")["NRestarts"] == "2"
        answers(clients, channel=5)

        # stop in the middle of an answer: every note released, a clean exit.
        clients.monitor.clear()
        clients.player.play([60, 62, 64])
        assert poll(lambda: hanging(clients.monitor.messages), 5), "an answer's note is sounding"
        started = time.monotonic()
        user.systemctl("stop", UNIT)
        timed("stop", times, started)
        assert poll(lambda: not hanging(clients.monitor.messages), 1), hanging(clients.monitor.messages)
        shown = user.show(UNIT, "ActiveState", "Result")
        assert shown == {"ActiveState": "inactive", "Result": "success"}, shown  # not "timeout": not killed
        log = user.journal("--user-unit", UNIT)
        assert "stopping on signal SIGTERM" in log and "Traceback" not in log, log
        print(f"live manager: times {times}", flush=True)
    finally:
        if clients is not None:
            clients.close()
        user.systemctl("stop", UNIT, JACK_UNIT, check=False)
        user.stop()
        for leftover in Path("/dev/shm").glob(f"jack*_{server}_*"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def restarted(user: UserManager, old: int) -> int:
    """Wait for a new main process, active (READY again); its PID."""
    def new() -> int | None:
        shown = user.show(UNIT, "ActiveState", "MainPID")
        pid = int(shown["MainPID"])
        return pid if shown["ActiveState"] == "active" and pid not in (0, old) else None

    pid = poll(new, 30, 0.02)
    assert pid, user.journal("--user-unit", UNIT)[-3000:]
    assert not Path(f"/proc/{old}").exists() or "zombie" in Path(f"/proc/{old}/status").read_text()
    return pid


def test_on_pipewire_the_unit_plays_and_is_back_after_pipewire_crashes(manager: UserManager, tiny_model: Path,
                                                                        rtmidi_for_pipewire: Path) -> None:
    """The unit with PipeWire's JACK as docs/service.md gives it (a drop-in pointing libjack at
    PipeWire's, as pw-jack does) after the shipped ``After=pipewire.service``: READY, a duet;
    PipeWire killed → the watch sees it, mididuet exits 3, systemd starts it again, it plays."""
    require(pipewire_available())
    user = manager
    times: dict[str, float] = {}
    install(user)
    quantum = f"{TEST_QUANTUM}/48000"
    # Ours in place of the distribution's pipewire.service, which refuses root (ConditionUser=!root).
    (user.unit_dir / "pipewire.service").unlink(missing_ok=True)
    (user.unit_dir / "pipewire.service").write_text("""\
[Unit]
Description=PipeWire, for mididuet's test
[Service]
ExecStart=/usr/bin/pipewire
ExecStartPost=/bin/sh -c 'for i in $(seq 200); do [ -S "$XDG_RUNTIME_DIR/pipewire-0" ] \\
  && exit 0; sleep 0.05; done; exit 1'
Restart=on-failure
RestartSec=0.5
""")
    dropin = user.unit_dir / f"{UNIT}.d" / "pipewire.conf"
    dropin.parent.mkdir()
    # PYTHONPATH stands for the user's rebuilt python-rtmidi (`make rtmidi-system`); the rest is the doc's drop-in.
    dropin.write_text(f"""\
[Service]
Environment=LD_LIBRARY_PATH={pw_jack_dir()} PIPEWIRE_QUANTUM={quantum}
Environment=PYTHONPATH={rtmidi_for_pipewire} HOME={user.home} XDG_CONFIG_HOME={user.config}
LimitCORE=0
""")
    user.start()
    clients: RemoteClients | None = None
    client_env = {"XDG_RUNTIME_DIR": str(user.runtime), "LD_LIBRARY_PATH": str(pw_jack_dir()),
                  "PIPEWIRE_QUANTUM": quantum, "PYTHONPATH": str(rtmidi_for_pipewire), "JACK_NO_START_SERVER": "1",
                  "MIDO_BACKEND": JACK_BACKEND}
    name = f"mdtest-pwunit-{os.urandom(3).hex()}"
    try:
        user.systemctl("start", "pipewire.service")
        clients = RemoteClients(client_env, name)
        write_config(user, clients, tiny_model, channel=2)
        started = time.monotonic()
        user.systemctl("start", UNIT)
        timed("on PipeWire: start to READY", times, started)
        pid = int(user.show(UNIT, "MainPID")["MainPID"])
        assert poll(lambda: user.show(UNIT, "StatusText")["StatusText"].startswith("playing: "), 5)
        assert "through PipeWire's libjack" in user.journal("--user-unit", UNIT)
        answers(clients, channel=2)

        server = int(user.show("pipewire.service", "MainPID")["MainPID"])
        assert user.owns(server)
        started = time.monotonic()
        os.kill(server, signal.SIGKILL)
        clients.close()  # its clients went with the server
        clients = None
        # The manager's view of the exit (its journal line can come late): exit status 3, seen
        # in the 5 s before Restart= starts it again, or the line itself.
        assert poll(lambda: user.show(UNIT, "ExecMainStatus")["ExecMainStatus"] == "3"
                    or "status=3/" in user.journal("--user-unit", UNIT), 20, 0.02), user.journal("--user-unit", UNIT)
        timed("on PipeWire: SIGKILL of pipewire to mididuet's exit 3", times, started)
        assert "the JACK server went away" in user.journal("--user-unit", UNIT)
        assert poll(lambda: user.show("pipewire.service", "ActiveState")["ActiveState"] == "active", 10)
        clients = RemoteClients(client_env, name)  # the same port names, as a synth that comes back
        pid = restarted(user, pid)
        assert poll(lambda: user.show(UNIT, "StatusText")["StatusText"].startswith("playing: "), 10)
        timed("on PipeWire: SIGKILL of pipewire to playing again", times, started)
        answers(clients, channel=2)
        user.systemctl("stop", UNIT)
        assert user.show(UNIT, "Result")["Result"] == "success"
        print(f"live manager: times {times}", flush=True)
    finally:
        if clients is not None:
            clients.close()
        user.systemctl("stop", UNIT, "pipewire.service", check=False)
        user.stop()
