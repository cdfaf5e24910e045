"""The JACK watch on any libjack: the library rtmidi really calls, and an activated client.

Each case runs in a child process, because which libjack a process holds is fixed when
rtmidi loads: the PyPI wheel's own copy, PipeWire's preloaded beside it (the case that
crashed the first-in-``/proc/self/maps`` lookup), or the system's under ``pw-jack``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from mididuet.daemon.ports.libjack import classify, jack_symbol_library, rtmidi_extension
from tests.helpers.jack import REPO, JackServer, jack_available, require
from tests.helpers.pipewire import PipeWireServer, pw_jack_dir

# The child: rtmidi with a JACK client of its own, then the watch; prints one JSON line,
# then "gone" when the server goes (or nothing, within the parent's wait).
CHILD = """
import json, sys, time
import rtmidi
out = rtmidi.MidiOut(rtapi=rtmidi.API_UNIX_JACK)
out.open_virtual_port("out")
from mididuet.daemon.ports.jackwatch import ServerWatch
mapped = [line.split()[-1] for line in open("/proc/self/maps") if "/libjack" in line]
watch = ServerWatch(lambda: print("gone", flush=True))
started = watch.start()
print(json.dumps({"started": started, "library": str(watch.library), "first_mapped": mapped[0]}), flush=True)
time.sleep(float(sys.argv[1]))
watch.close()
"""


def child(env: dict[str, str], linger: float = 0.0) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", CHILD, str(linger)], cwd=REPO, env={**os.environ, **env},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)


def test_in_this_process_the_watch_takes_the_libjack_rtmidi_links() -> None:
    """The wheel's rtmidi links its own copy: found through the extension, no server needed."""
    found = jack_symbol_library()
    assert found is not None and found.exists()
    linked = subprocess.run(["ldd", str(rtmidi_extension())], capture_output=True, text=True, check=True).stdout
    needed = next(line.split("=>")[1].split("(")[0].strip() for line in linked.splitlines() if "libjack" in line)
    assert found.resolve() == Path(needed).resolve()
    assert classify(found).bundled


@pytest.mark.jack
def test_with_pipewires_libjack_preloaded_the_watch_uses_it_and_does_not_crash(pipewire_server: PipeWireServer) -> None:
    """rtmidi's calls go to the preloaded PipeWire libjack; the wheel's copy, mapped first,
    is the one a lookup in /proc/self/maps took, and jack_client_open crashed in it."""
    lib = pw_jack_dir()
    assert lib is not None
    env = {**pipewire_server.base_env, "LD_PRELOAD": str(lib / "libjack.so.0")}
    env.pop("PYTHONPATH")  # this venv's own python-rtmidi: the wheel, with its bundled libjack
    proc = child(env)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, f"the child died ({proc.returncode}): {out}"
    report = json.loads(out.splitlines()[0])
    assert classify(Path(report["first_mapped"])).bundled, "the trap: the wheel's copy is mapped first"
    assert report["started"] and classify(Path(report["library"])).pipewire, report


@pytest.mark.jack
@pytest.mark.parametrize("kind", ["pipewire", "jackd"])
def test_the_watch_hears_the_server_go(kind: str, request: pytest.FixtureRequest) -> None:
    """pipewire-jack calls jack_on_shutdown only for activated clients: the watch activates."""
    server: JackServer | PipeWireServer
    if kind == "jackd":
        require(jack_available())
        server = JackServer()
    else:
        server = PipeWireServer(rtmidi=request.getfixturevalue("rtmidi_for_pipewire"))
    server.start()
    proc = None
    try:
        proc = child(server.env, linger=10)
        assert proc.stdout is not None
        report = json.loads(proc.stdout.readline())
        assert report["started"], report
        assert (kind == "pipewire") == classify(Path(report["library"])).pipewire, report
        server.stop()
        assert proc.stdout.readline().strip() == "gone", "the watch did not hear the server go"
    finally:
        server.stop()
        if isinstance(server, PipeWireServer):
            server.close()
        if proc is not None:
            proc.kill()
            proc.wait()
