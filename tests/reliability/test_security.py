"""The security promises, checked on the source (an AST scan, not a grep of text).

- The daemon imports nothing that speaks a network protocol or unpickles: no ``pickle``
  family, no ``http``/``urllib``/``asyncio`` servers, and ``socket`` only in
  :mod:`daemon.notify`, where every socket it makes is ``AF_UNIX`` (systemd's notify
  socket, a local datagram). tests/e2e/test_service.py checks the running process too.
- ``numpy.load`` is never called without ``allow_pickle=False``, in the daemon or the trainer.
- The config file is parsed with the standard library's ``tomllib`` and nothing else.
- ``mididuet run`` writes only into the record directory: the one place in the daemon
  that creates a directory for ``run`` is the recorder, with ``mkdir``'s default mode
  (0o777 filtered by the user's umask).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DAEMON = sorted((REPO / "daemon").glob("*.py"))
TRAINING = sorted((REPO / "training").glob("*.py"))
FORBIDDEN = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "joblib", "cloudpickle",
             "http", "urllib", "urllib3", "requests", "ftplib", "smtplib", "xmlrpc", "socketserver",
             "asyncio", "ssl", "telnetlib", "websockets", "zmq"}
TOML_LIBRARIES = {"toml", "tomli", "tomlkit", "pytoml", "rtoml", "yaml"}
SOCKET_ALLOWED_IN = {"notify.py"}


def _tree(path: Path) -> ast.AST:
    return ast.parse(path.read_text(), filename=str(path))


def _imports(tree: ast.AST) -> set[str]:
    """Top-level package names imported anywhere in the module (deferred imports included)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_the_daemon_imports_no_pickle_and_no_network_module() -> None:
    assert DAEMON, "daemon/ not found"
    found = {path.name: _imports(_tree(path)) & FORBIDDEN for path in DAEMON}
    assert not {name: mods for name, mods in found.items() if mods}


def test_sockets_only_in_notify_and_only_unix_domain() -> None:
    for path in DAEMON:
        tree = _tree(path)
        if "socket" not in _imports(tree):
            continue
        assert path.name in SOCKET_ALLOWED_IN, f"{path.name} imports socket"
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and _dotted(n.func) == "socket.socket"]
        assert calls, "notify.py makes its socket with socket.socket(...)"
        for call in calls:
            family = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "family"), None)
            assert family is not None and _dotted(family) == "socket.AF_UNIX", ast.unparse(call)


@pytest.mark.parametrize("path", DAEMON + TRAINING, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_numpy_load_always_refuses_pickles(path: Path) -> None:
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Call) and _dotted(node.func) in {"np.load", "numpy.load"}:
            flags = {k.arg: k.value for k in node.keywords}
            value = flags.get("allow_pickle")
            assert isinstance(value, ast.Constant) and value.value is False, f"{path.name}: {ast.unparse(node)}"


def test_the_config_is_parsed_with_tomllib_only() -> None:
    config = REPO / "daemon" / "config.py"
    if not config.is_file():
        pytest.skip("daemon/config.py does not exist yet")
    imports = {path.name: _imports(_tree(path)) for path in DAEMON}
    assert "tomllib" in imports["config.py"]
    assert not {name: found & TOML_LIBRARIES for name, found in imports.items() if found & TOML_LIBRARIES}


def test_run_creates_only_the_record_directory_with_the_default_mode() -> None:
    """Directory creation in modules ``run`` uses: only the recorder, and without a mode."""
    run_modules = {"runner.py", "engine.py", "listen.py", "scheduler.py", "window.py", "sampler.py", "bundle.py",
                   "ports.py", "links.py", "reload.py", "record.py", "notify.py", "config.py", "stats.py"}
    makers = []
    for path in DAEMON:
        if path.name not in run_modules:
            continue
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] in {"mkdir", "makedirs", "chmod"}:
                makers.append((path.name, ast.unparse(node)))
                assert not any(k.arg == "mode" for k in node.keywords), f"{path.name}: {ast.unparse(node)}"
    assert [name for name, _ in makers] == ["record.py"], makers
