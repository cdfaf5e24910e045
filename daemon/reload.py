"""SIGHUP: switch to a new config and model without dropping the ports.

Everything new is loaded and checked before anything old is touched: the options are
rebuilt (the config file read again, the command-line flags applied on top), the model
bundle is opened and checked (:func:`daemon.bundle.load_bundle`, a smoke query
included). If either is refused, the error is logged and the old engine keeps playing.

Then every sounding note is released and a new :class:`~daemon.engine.Engine` is built
with the same send, recorder and stats — the engine holds the model's vocabulary in its
window and sampler, so swapping only the model would leave token ids that mean other
tokens. The mode a player chose with the mode CC, and mute, survive a reload unless the
config itself changed the mode.

Ports, API and record directory are opened once: a change there is logged as needing a
restart, and the old ones stay.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import mido

from daemon.bundle import ModelRunner, load_bundle
from daemon.errors import MididuetError
from daemon.settings import EngineSettings

if TYPE_CHECKING:
    from daemon.runner import Runner

log = logging.getLogger("mididuet.reload")

# (RunOptions attribute, what to call it): kept from the first start until a restart.
_FIXED = (("in_port", "in"), ("out_port", "out"), ("api", "api"), ("record_dir", "record"),
          ("rt_priority", "rt-priority"))


def new_engine(model: ModelRunner, settings: EngineSettings, send: Callable[[mido.Message], None],
               primer: list[str] | None, recorder: Any, stats: Any) -> Any:
    """An engine starting now; logs each token it plays when debug logging is on."""
    from daemon.engine import Engine  # onnxruntime and numpy: not for `mididuet ports`

    engine = Engine(model, settings, send, time.monotonic_ns(), primer=primer, recorder=recorder, stats=stats)
    if logging.getLogger("mididuet").isEnabledFor(logging.DEBUG):
        engine.on_token = lambda token: log.debug("play token %s", token)  # a call per token only when asked
    return engine


def reload(runner: Runner) -> bool:
    """Reload ``runner``'s options and model; True when switched, False when refused (logged)."""
    old = runner.options
    try:
        new = old.reload() if old.reload is not None else old
        new.settings.validate()
        model = load_bundle(new.model)
    except (MididuetError, ValueError) as err:
        log.error("reload refused, still playing %s: %s", runner.model.path.name, err)
        runner.notify_status()
        return False
    for attr, name in _FIXED:
        if getattr(new, attr) != getattr(old, attr):
            log.warning("reload: %s changed to %r; restart mididuet to use it (still %r)",
                        name, getattr(new, attr), getattr(old, attr))
    engine = runner.engine
    mode = new.settings.mode if new.settings.mode != old.settings.mode else engine.mode
    muted = engine.mute
    engine.release_all()
    runner.engine = new_engine(model, new.settings, runner.send, new.primer, runner.recorder, runner.stats)
    if runner.engine.mode != mode:
        runner.engine.set_mode(mode)
    if muted:
        runner.engine.mute = True
    runner.model = model
    runner.options = dataclasses.replace(new, **{attr: getattr(old, attr) for attr, _ in _FIXED},
                                         stats=old.stats, on_ready=old.on_ready, notifier=old.notifier,
                                         reload=old.reload)
    if new.log_level is not None:
        logging.getLogger().setLevel(new.log_level.upper())
    runner.schedule_chores(time.monotonic_ns())
    log.info("reloaded: model %s (%d tokens), mode %s", model.path.name, model.info.size, runner.engine.mode)
    runner.notify_status()
    runner.engine.begin(time.monotonic_ns())  # last: a solo's first token counts from here
    return True
