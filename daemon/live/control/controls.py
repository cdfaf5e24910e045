"""The live controls a client may set, one line each in :data:`CONTROLS`.

Each goes through the engine methods the MIDI CCs use (``Engine.set_mode``, ``mute``,
``set_temperature``, ``set_rhythm_temperature``, ``set_memory``, ``panic``), so a knob and
a key in ``mididuet watch`` do the same thing.
A control declared as an engine setting takes its choices or range from that declaration
(:func:`from_setting`); values are checked on the control socket's thread, before the
request reaches the loop, so a bad one changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ...engine.engine import Engine
from ...engine.settings import EngineSettings, declared
from .protocol import BAD_VALUE, ProtocolError


@dataclass(frozen=True)
class Control:
    """A live control: how to read it, set it, and what values it takes."""

    name: str
    help: str
    get: Callable[[Engine], Any]
    set: Callable[[Engine, Any], None]
    choices: tuple[str, ...] | None = None
    bounds: tuple[float, float] | None = None  # a number in this range; else a switch when no choices
    step: float | None = None  # what `mididuet watch`'s keys add or take away

    @property
    def kind(self) -> str:
        return "choice" if self.choices else "number" if self.bounds else "switch"

    def check(self, value: Any) -> Any:
        """The value to set, or :class:`ProtocolError` (``bad-value``) naming the allowed ones."""
        if self.choices is not None:
            if value not in self.choices:
                raise ProtocolError(BAD_VALUE, f"{self.name} must be one of {', '.join(self.choices)}, got {value!r}")
            return value
        if self.bounds is not None:
            low, high = self.bounds
            if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
                raise ProtocolError(BAD_VALUE, f"{self.name} must be a number in range {low:g}..{high:g}, "
                                    f"got {value!r}")
            return float(value)
        if not isinstance(value, bool):
            raise ProtocolError(BAD_VALUE, f"{self.name} must be true or false, got {value!r}")
        return value

    def describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "kind": self.kind, "help": self.help}
        if self.choices is not None:
            out["choices"] = list(self.choices)
        if self.bounds is not None:
            out["min"], out["max"] = self.bounds
        if self.step is not None:
            out["step"] = self.step
        return out


def from_setting(name: str, set_value: Callable[[Engine, Any], None], step: float | None = None,
                 get: Callable[[Engine], Any] | None = None) -> Control:
    """A control over the engine setting ``name``: its help, choices and range as declared;
    its current value is ``get(engine)``, by default the engine's attribute of that name."""
    found = {d.name: d.setting for d in declared(EngineSettings)}[name]
    bounds = getattr(found.check, "bounds", None)
    return Control(name, found.help, get or (lambda engine: getattr(engine, name)), set_value, found.choices, bounds,
                   step)


def _set_mode(engine: Engine, mode: str) -> None:
    if mode != engine.mode:  # as the mode CC: the same mode again does not restart it
        engine.set_mode(mode)


def _set_mute(engine: Engine, mute: bool) -> None:
    engine.mute = mute


CONTROLS: dict[str, Control] = {control.name: control for control in (
    from_setting("mode", _set_mode),
    from_setting("temperature", Engine.set_temperature, step=0.1),
    from_setting("rhythm_temperature", Engine.set_rhythm_temperature, step=0.1),
    from_setting("memory", Engine.set_memory, step=0.1, get=lambda engine: engine.memory_weight),
    Control("mute", "silence the answers (what is sounding is released)", lambda engine: engine.mute, _set_mute),
)}


def values(engine: Engine) -> dict[str, Any]:
    """Every control's value now."""
    return {name: control.get(engine) for name, control in CONTROLS.items()}
