"""A live systemd user manager for tests, started so that it can touch nothing but its own.

:class:`UserManager` runs ``systemd --user`` (and a journald for its log) through
``user_manager.sh``: a helper shell moves itself into a cgroup of the test's own, in every
hierarchy, checks that it got there, and only then starts the manager in a private mount
namespace with tmpfs on ``/run/systemd``, ``/run/log`` and ``/var/log/journal`` (a
manager started in the root cgroup moves every process of the machine into
``init.scope``). The pytest process itself never changes cgroup.

:meth:`UserManager.stop` ends everything it started by PID, removes its cgroups, and
raises when PID 1's, this process's or its parent's cgroups are not what they were.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from pathlib import Path

HELPER = Path(__file__).with_name("user_manager.sh")
TARGET = "mdtest.target"  # what the manager starts: nothing but the test's units
# The manager's own units that /etc/systemd/user or the distribution enable (fluidsynth's
# package enables fluidsynth.service, PipeWire its socket): masked in the test's config.
UNIT_DIRS = (Path("/etc/systemd/user"), Path("/usr/lib/systemd/user"), Path("/etc/xdg/systemd/user"))


def hierarchies() -> list[Path] | None:
    """The cgroup hierarchies a manager tracks its processes in, or None when not known here."""
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base]  # cgroup v2 only
    unified, named = base / "unified", base / "systemd"
    if (unified / "cgroup.procs").exists() and (named / "cgroup.procs").exists():
        return [unified, named]  # hybrid, as on the project's machines
    return None


def unavailable() -> str | None:
    """None when a user manager of our own can start here, else why not."""
    if os.geteuid() != 0:
        return "needs root: the test makes cgroups and a mount namespace of its own"
    missing = [tool for tool in ("unshare", "nsenter", "systemctl", "jackd", "jack_wait") if shutil.which(tool) is None]
    missing += [path for path in ("/lib/systemd/systemd", "/lib/systemd/systemd-journald") if not Path(path).exists()]
    if missing:
        return f"{', '.join(missing)} missing (apt-get install systemd jackd2)"
    if Path("/proc/1/comm").read_text().strip() == "systemd":
        return "a systemd runs this machine: the test starts a manager of its own only where none runs (containers)"
    found = hierarchies()
    if found is None:
        return "no cgroup hierarchy this test knows (/sys/fs/cgroup/unified and /systemd, or cgroup v2)"
    if not all(os.access(h, os.W_OK) for h in found):
        return f"cannot create cgroups in {', '.join(map(str, found))}"
    try:
        subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], check=True, timeout=10,
                       capture_output=True)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        return f"cannot make a private mount namespace: {err}"
    return None


def cgroups_of(pid: int | str) -> str:
    return Path(f"/proc/{pid}/cgroup").read_text()


class UserManager:
    """``systemd --user`` in a cgroup and a mount namespace of the test's own.

    ``root`` holds its home, config (``XDG_CONFIG_HOME``), runtime directory and data.
    Units go in :attr:`unit_dir` before :meth:`start`; ``systemctl`` runs inside the
    namespace (:meth:`systemctl`).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.home, self.config, self.runtime = root / "home", root / "config", root / "run"
        self.unit_dir = self.config / "systemd" / "user"
        for d in (self.home, self.unit_dir, root / "data", root / "state", root / "cache"):
            d.mkdir(parents=True, exist_ok=True)
        self.runtime.mkdir(mode=0o700, exist_ok=True)
        self.runtime.chmod(0o700)
        self.slice = f"mdtest-{os.getpid()}-{uuid.uuid4().hex[:6]}.slice"
        self.cgroup = f"/{self.slice}/user@{os.getuid()}.service"
        self.helper: subprocess.Popen[str] | None = None
        self.pids: list[int] = []  # journald's and the manager's
        self._before: dict[str, str] = {}

    @property
    def env(self) -> dict[str, str]:
        """What ``systemctl --user`` needs to find this manager."""
        return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(self.home),
                "XDG_RUNTIME_DIR": str(self.runtime), "XDG_CONFIG_HOME": str(self.config)}

    def _snapshot(self) -> dict[str, str]:
        return {"PID 1": cgroups_of(1), "this process": cgroups_of(os.getpid()),
                "its parent": cgroups_of(os.getppid())}

    def _mask_enabled_units(self) -> None:
        (self.unit_dir / TARGET).write_text("[Unit]\nDescription=the test's units only\nDefaultDependencies=no\n")
        for d in UNIT_DIRS:
            for wanted in [*d.glob("*.wants/*"), *d.glob("*.requires/*")]:
                mask = self.unit_dir / wanted.name
                if not mask.exists():
                    mask.symlink_to("/dev/null")

    def start(self, timeout: float = 15.0) -> None:
        """Start the manager; returns once it is running. Raises ``RuntimeError``."""
        self._before = self._snapshot()
        self._mask_enabled_units()
        self.helper = subprocess.Popen(["/bin/bash", str(HELPER), self.cgroup, str(self.root), TARGET],
                                       stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                       text=True, start_new_session=True)
        assert self.helper.stdout is not None
        lines: list[str] = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.helper.stdout.readline().strip()
            if not line:
                break
            lines.append(line)
            if line.startswith("pids "):
                self.pids = [int(p) for p in line.split()[1:] if p.isdigit() and int(p) > 1]
            if line.startswith(("state ", "error")):
                break
        state = lines[-1] if lines else "(nothing)"
        if state != "state running":
            self.stop()
            raise RuntimeError(f"the user manager did not start: {' | '.join(lines) or 'no output'}")
        self.check_contained()

    def check_contained(self) -> None:
        """Raise when anything of ours runs outside our cgroup, or others' cgroups changed."""
        for what, before in self._before.items():
            pid = {"PID 1": 1, "this process": os.getpid(), "its parent": os.getppid()}[what]
            now = cgroups_of(pid)
            if now != before:
                raise AssertionError(f"DANGER: the cgroups of {what} changed:\nbefore:\n{before}\nnow:\n{now}")
        for pid in self.pids:
            with contextlib.suppress(FileNotFoundError):
                for line in cgroups_of(pid).splitlines():
                    if (line.startswith("0::") or ":name=systemd:" in line) and self.cgroup not in line:
                        raise AssertionError(f"DANGER: process {pid} runs outside {self.cgroup}: {line}")

    def systemctl(self, *args: str, check: bool = True, timeout: float = 30.0) -> subprocess.CompletedProcess[str]:
        """``systemctl --user ARGS`` inside the manager's mount namespace."""
        return self._inside(["systemctl", "--user", *args], check, timeout)

    def journal(self, *args: str) -> str:
        """The log (journald in the namespace), e.g. ``journal("--user-unit", "mididuet")``."""
        return self._inside(["journalctl", "--no-pager", "-o", "cat", *args], False, 30).stdout

    def _inside(self, command: list[str], check: bool, timeout: float) -> subprocess.CompletedProcess[str]:
        assert self.helper is not None and self.helper.pid > 1
        done = subprocess.run(["nsenter", "-t", str(self.helper.pid), "-m", "--", *command], env=self.env,
                              capture_output=True, text=True, timeout=timeout, check=False)
        if check and done.returncode != 0:
            raise AssertionError(f"{' '.join(command)} failed ({done.returncode}): {done.stdout}{done.stderr}")
        return done

    def show(self, unit: str, *properties: str) -> dict[str, str]:
        """``systemctl --user show UNIT -p ...`` as a dict."""
        out = self.systemctl("show", unit, *(f"--property={p}" for p in properties)).stdout
        return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)

    def owns(self, pid: int) -> bool:
        """True when ``pid`` runs inside this manager's cgroup (only those may be signalled)."""
        try:
            return pid > 1 and f"::{self.cgroup}/" in cgroups_of(pid)
        except FileNotFoundError:
            return False

    def _leftovers(self) -> list[int]:
        pids: set[int] = set()
        for h in hierarchies() or []:
            for procs in (h / self.slice.lstrip("/")).rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
        return sorted(p for p in pids if p > 1 and p != os.getpid())

    def stop(self) -> None:
        """Stop the manager (it stops its units), then anything left in our cgroup, by PID;
        remove the cgroups; raise if another process's cgroups changed."""
        if self.helper is not None:
            with contextlib.suppress(BrokenPipeError, OSError, ValueError):
                assert self.helper.stdin is not None
                self.helper.stdin.write("exit\n")
                self.helper.stdin.close()
            try:
                self.helper.wait(timeout=15)
            except subprocess.TimeoutExpired:
                if self.helper.pid > 1:
                    os.kill(self.helper.pid, signal.SIGKILL)
                self.helper.wait()
            self.helper = None
        for pid in self._leftovers():  # only processes inside our own cgroup
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 5
        while self._leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)
        for h in hierarchies() or []:
            top = h / self.slice
            if top.exists():
                for d in sorted((p for p in top.rglob("*") if p.is_dir()), key=lambda p: len(p.parts), reverse=True):
                    with contextlib.suppress(OSError):
                        d.rmdir()
                with contextlib.suppress(OSError):
                    top.rmdir()
        if self._before:
            self.check_contained()
