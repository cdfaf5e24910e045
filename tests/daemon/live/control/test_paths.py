"""Where the control socket lives, who may own its directory, and one daemon per path."""

from __future__ import annotations

import os
import socket
import stat
from pathlib import Path

import pytest

from mididuet.daemon.live.control import paths
from mididuet.daemon.live.control.paths import Claim, ControlPathError, SocketInUse


def private(path: Path) -> Path:
    path.mkdir(mode=0o700)
    return path


def test_the_socket_is_under_xdg_runtime_dir_by_default(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    assert paths.socket_path(None, env) == tmp_path / "mididuet" / "control.sock"
    assert paths.socket_path("second.sock", env) == tmp_path / "mididuet" / "second.sock"
    assert paths.socket_path("/elsewhere/c.sock", env) == Path("/elsewhere/c.sock")
    assert paths.socket_path("off", env) is None


def test_without_xdg_runtime_dir_logind_s_directory_then_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(paths, "LOGIND_ROOT", tmp_path / "run-user")
    monkeypatch.setattr(paths, "TMP", tmp_path / "tmp")
    uid = os.getuid()
    assert paths.runtime_dir({}, uid) == tmp_path / "tmp" / f"mididuet-{uid}"
    logind = tmp_path / "run-user" / str(uid)
    logind.mkdir(parents=True, mode=0o755)
    # a directory open to others is not logind's
    assert paths.runtime_dir({}, uid) == tmp_path / "tmp" / f"mididuet-{uid}"
    logind.chmod(0o700)
    assert paths.runtime_dir({}, uid) == logind / "mididuet"


def test_the_runtime_directory_is_made_0700_and_a_stale_socket_replaced(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    path = paths.socket_path(None, env)
    assert path is not None
    old = os.umask(0)  # the mode must not depend on the umask being kind
    try:
        claim = Claim.take(path, env)
    finally:
        os.umask(old)
    info = path.parent.lstat()
    assert stat.S_IMODE(info.st_mode) == 0o700 and info.st_uid == os.getuid()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))  # what a killed daemon leaves: a socket nobody listens on
    stale.close()
    claim.release(unlink=False)
    again = Claim.take(path, env)
    assert not path.exists(), "the stale socket is removed before the new one is bound"
    again.release()


def test_a_second_claim_is_refused_naming_the_holder(tmp_path: Path) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    path = paths.socket_path(None, env)
    assert path is not None
    first = Claim.take(path, env)
    with pytest.raises(SocketInUse, match=f"pid {os.getpid()}"):
        Claim.take(path, env)
    first.release()
    Claim.take(path, env).release()  # free again once released


@pytest.mark.parametrize("problem", ["open", "foreign", "symlink", "file"])
def test_an_unsafe_directory_is_refused(tmp_path: Path, problem: str) -> None:
    env = {"XDG_RUNTIME_DIR": str(tmp_path)}
    where = tmp_path / "mididuet"
    if problem == "open":
        where.mkdir(mode=0o700)
        where.chmod(0o755)
    elif problem == "foreign":
        if os.getuid() != 0:
            pytest.skip("needs root to give a directory to another user")
        where.mkdir(mode=0o700)
        os.chown(where, 65534, 65534)
    elif problem == "symlink":
        private(tmp_path / "real")
        where.symlink_to(tmp_path / "real")
    else:
        where.write_text("")
    with pytest.raises(ControlPathError, match="refusing"):
        Claim.take(where / "control.sock", env)


def test_a_file_in_the_socket_s_place_is_left_alone(tmp_path: Path) -> None:
    path = private(tmp_path / "ctl") / "control.sock"
    path.write_text("mine")
    with pytest.raises(ControlPathError, match="not a socket"):
        Claim.take(path, {})
    assert path.read_text() == "mine"
    # and the lock was given back: once the file is gone the path can be claimed
    path.unlink()
    Claim.take(path, {}).release()


def test_a_given_path_must_be_in_a_private_directory(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o755)
    with pytest.raises(ControlPathError, match="open to others"):
        Claim.take(shared / "c.sock", {})
