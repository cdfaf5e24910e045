"""The security promises, checked on the source (an AST scan, not a grep of text).

The modules ``mididuet run`` loads are worked out from the imports themselves
(:func:`tests.helpers.imports.closure`, deferred imports included), starting from what
the CLI imports at start and from ``service.launch``, the command's own module: a module
added to the run path cannot escape the checks.

- What ``run`` loads imports nothing that speaks a network protocol or unpickles: no
  ``pickle`` family, no ``http``/``urllib``/``asyncio`` servers, and ``socket`` only in
  the modules listed here, where every socket made is ``AF_UNIX``.
  tests/e2e/test_service.py checks the running process too.
- Nothing in the daemon imports the ``pickle`` family at all, and ``numpy.load`` is never
  called without ``allow_pickle=False``, in the daemon or the trainer.
- The config file is parsed with the standard library's ``tomllib`` and nothing else.
- ``mididuet run`` writes only into the record directory and its control socket's
  runtime directory: the two places on its path that create a directory are the
  recorder, with ``mkdir``'s default mode (0o777 filtered by the user's umask), and the
  control socket's :func:`make_private_dir`, with mode 0o700 and nothing else.
- ``run`` never loads the watch app or Textual (it serves them, over the socket).
"""

from __future__ import annotations

import ast

import pytest

from tests.helpers.imports import closure, external, module_files, tree

PICKLES = {"pickle", "cPickle", "_pickle", "dill", "shelve", "marshal", "joblib", "cloudpickle"}
NETWORK = {"http", "urllib", "urllib3", "requests", "ftplib", "smtplib", "xmlrpc", "socketserver",
           "asyncio", "ssl", "telnetlib", "websockets", "zmq"}
TOML_LIBRARIES = {"toml", "tomli", "tomlkit", "pytoml", "rtoml", "yaml"}
SOCKET_ALLOWED_IN = {"mididuet.daemon.service.notify", "mididuet.daemon.live.control.server"}
PRIVATE_DIR_MAKER = "mididuet.daemon.live.control.paths"
CLI = "mididuet.daemon.cli"
RUN_COMMAND = "mididuet.daemon.service.launch"


def run_modules() -> set[str]:
    return closure({CLI, RUN_COMMAND}, top_level_only={CLI})


def daemon_modules() -> list[str]:
    return [name for name in module_files() if name.startswith("mididuet.daemon")]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return node.id if isinstance(node, ast.Name) else ""


def test_the_run_path_is_worked_out_from_the_imports() -> None:
    """The closure finds the modules run really uses, so the checks below check them."""
    found = run_modules()
    for expected in ("live.runner", "live.chores", "live.supervisor", "live.reload", "live.record",
                     "listen.intake", "listen.parse", "ports.jackwatch", "ports.input", "live.options",
                     "service.notify", "service.config", "music.midi_reader", "engine.engine", "predict.bundle"):
        assert f"mididuet.daemon.{expected}" in found, expected
    assert not {name for name in found if ".offline" in name}, "run must never load the offline tools"
    assert not {name for name in found if name.startswith("mididuet.training")}
    assert "mididuet.daemon.live.control.server" in found
    assert not {name for name in found if ".watch" in name}, "run must never load the watch app"
    assert not {name for name, mods in external(found).items() if "textual" in mods}


def test_the_run_path_imports_no_pickle_and_no_network_module() -> None:
    found = {name: mods & (PICKLES | NETWORK) for name, mods in external(run_modules()).items()}
    assert not {name: mods for name, mods in found.items() if mods}


def test_nothing_in_the_daemon_unpickles() -> None:
    found = {name: mods & PICKLES for name, mods in external(set(daemon_modules())).items()}
    assert not {name: mods for name, mods in found.items() if mods}


def test_sockets_only_where_allowed_and_only_unix_domain() -> None:
    files = module_files()
    for name, mods in external(run_modules()).items():
        if "socket" not in mods:
            continue
        assert name in SOCKET_ALLOWED_IN, f"{name} imports socket"
        calls = [n for n in ast.walk(tree(files[name]))
                 if isinstance(n, ast.Call) and _dotted(n.func) == "socket.socket"]
        assert calls, f"{name} makes its sockets with socket.socket(...)"
        for call in calls:
            family = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "family"), None)
            assert family is not None and _dotted(family) == "socket.AF_UNIX", ast.unparse(call)


@pytest.mark.parametrize("name", sorted(module_files()))
def test_numpy_load_always_refuses_pickles(name: str) -> None:
    for node in ast.walk(tree(module_files()[name])):
        if isinstance(node, ast.Call) and _dotted(node.func) in {"np.load", "numpy.load"}:
            flags = {k.arg: k.value for k in node.keywords}
            value = flags.get("allow_pickle")
            assert isinstance(value, ast.Constant) and value.value is False, f"{name}: {ast.unparse(node)}"


def test_the_config_is_parsed_with_tomllib_only() -> None:
    imports = external(set(daemon_modules()))
    assert "tomllib" in imports["mididuet.daemon.service.config"]
    assert not {name: found & TOML_LIBRARIES for name, found in imports.items() if found & TOML_LIBRARIES}


def test_run_creates_only_the_record_directory_and_a_private_runtime_directory() -> None:
    """Directory creation in the modules ``run`` loads: the recorder without a mode, and the
    control socket's runtime directory with exactly 0o700 (and nothing is chmod-ed)."""
    files = module_files()
    makers = []
    for name in sorted(run_modules()):
        for node in ast.walk(tree(files[name])):
            if isinstance(node, ast.Call) and _dotted(node.func).split(".")[-1] in {"mkdir", "makedirs", "chmod"}:
                makers.append((name, ast.unparse(node)))
                if name == PRIVATE_DIR_MAKER:
                    assert _dotted(node.func) == "os.mkdir" and not node.keywords, ast.unparse(node)
                    mode = node.args[1]
                    assert isinstance(mode, ast.Name) and mode.id == "DIR_MODE", ast.unparse(node)
                else:
                    assert not any(k.arg == "mode" for k in node.keywords), f"{name}: {ast.unparse(node)}"
    assert sorted(name for name, _ in makers) == [PRIVATE_DIR_MAKER, "mididuet.daemon.live.record"], makers
    from mididuet.daemon.live.control import paths

    assert paths.DIR_MODE == 0o700
