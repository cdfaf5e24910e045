"""``mididuet run``: its options from the defaults, the config file and the flags, the
hooks systemd needs, and the run itself.

Under systemd (``NOTIFY_SOCKET`` set, as for a ``Type=notify`` unit) two defaults change,
both overridable in the config or by flags: mididuet waits for missing ports (``wait``)
instead of exiting, and prints a stats line every 10 minutes. In a terminal, an unknown
port name stays a fast error listing the ports that exist.
"""

from __future__ import annotations

import argparse
import logging

from ..live.options import RunHooks
from ..live.runner import run as run_daemon
from . import config
from .notify import Notifier

log = logging.getLogger("mididuet.service")


def run(args: argparse.Namespace) -> int:
    """Resolve the options (``ConfigError``: exit 2, nothing opened), wire systemd and a
    reload that reads the same config and flags again, and run until stopped."""
    options = config.resolve(args)
    logging.getLogger().setLevel(options.log_level.upper())
    path = options.config_path or config.default_config_path()
    log.info("config %s%s", path, "" if path.is_file() else " (absent: defaults and flags only)")
    hooks = RunHooks(notifier=Notifier.from_environ(), reload=lambda: config.resolve(args))
    return run_daemon(options, hooks)
