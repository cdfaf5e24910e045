"""SIGHUP: switch to a new config and model without dropping the ports.

:func:`prepare` loads and checks everything new before anything old is touched: the
options are rebuilt (the config file read again, the command-line flags applied on top),
the model bundle is opened and checked (:func:`..predict.bundle.load_bundle`, a smoke
query included), the primer read. If any of it is refused it raises, and the old engine
keeps playing. It returns a :class:`Reload` that the runner applies: every sounding note
released, a new engine built with the same output, recorder and stats (the engine holds
the model's vocabulary in its window and sampler, so swapping only the model would leave
token ids that mean other tokens), and what the player chose live carried over
(:func:`carry_over`).

Ports, API, record directory and real-time priority are opened once: a change there is
logged as needing a restart, and the old ones stay.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass

from ..engine.engine import Engine
from ..predict.bundle import ModelRunner, load_bundle
from .options import RunOptions

log = logging.getLogger("mididuet.reload")

# (RunOptions field, what to call it): kept from the first start until a restart.
FIXED = (("in_port", "in"), ("out_port", "out"), ("api", "api"), ("record_dir", "record"),
         ("rt_priority", "rt-priority"), ("control", "control"))


@dataclass(frozen=True)
class Reload:
    """What a reload switches to."""

    options: RunOptions
    model: ModelRunner
    primer: list[str] | None


def prepare(current: RunOptions, reread: Callable[[], RunOptions] | None) -> Reload:
    """The options and model to switch to. Raises ``MididuetError`` or ``ValueError``
    (nothing has changed then)."""
    new = reread() if reread is not None else current
    new.settings.validate()
    model = load_bundle(new.model)
    primer = new.primer_tokens()
    for attr, name in FIXED:
        if getattr(new, attr) != getattr(current, attr):
            log.warning("reload: %s changed to %r; restart mididuet to use it (still %r)",
                        name, getattr(new, attr), getattr(current, attr))
    kept = dataclasses.replace(new, **{attr: getattr(current, attr) for attr, _ in FIXED})
    return Reload(kept, model, primer)


def carry_over(old: Engine, new: Engine, old_mode_setting: str) -> None:
    """The mode a player chose with the mode CC, and mute, survive a reload unless the
    config itself changed the mode."""
    configured = new.settings.mode
    mode = configured if configured != old_mode_setting else old.mode
    if new.mode != mode:
        new.set_mode(mode)
    if old.mute:
        new.mute = True
