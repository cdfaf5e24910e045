"""Render a MIDI file to a WAV with FluidSynth, when it and a General MIDI soundfont exist."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from ..errors import MididuetError

SOUNDFONT_ENV = "MIDIDUET_SOUNDFONT"
# Where Debian/Ubuntu (timgm6mb-soundfont, fluid-soundfont-gm), Fedora and Homebrew put them.
SOUNDFONT_PLACES = (
    "/usr/share/sounds/sf2/default-GM.sf2",
    "/usr/share/sounds/sf2/FluidR3_GM.sf2",
    "/usr/share/sounds/sf2/TimGM6mb.sf2",
    "/usr/share/soundfonts/default.sf2",
    "/usr/share/soundfonts/FluidR3_GM.sf2",
    "/opt/homebrew/share/fluid-synth/sf2/default.sf2",
)
SAMPLE_RATE = 44_100
RENDER_TIMEOUT_S = 120
HOW_TO_GET = ("install FluidSynth and a General MIDI soundfont to get a WAV too "
              "(Debian/Ubuntu: sudo apt install fluidsynth timgm6mb-soundfont; "
              "macOS: brew install fluid-synth, then pass --soundfont FILE.sf2)")


class RenderError(MididuetError):
    """FluidSynth failed on a file."""


def find_soundfont(explicit: Path | None = None) -> Path | None:
    """``explicit``, else ``$MIDIDUET_SOUNDFONT``, else the first usual place that exists.

    Raises :class:`RenderError` when ``explicit`` is not a file: a soundfont the user
    named must not be swapped silently for another.
    """
    if explicit is not None and not explicit.is_file():
        raise RenderError(f"--soundfont {explicit}: no such file")
    candidates = [explicit] if explicit else []
    if os.environ.get(SOUNDFONT_ENV):
        candidates.append(Path(os.environ[SOUNDFONT_ENV]))
    candidates += [Path(p) for p in SOUNDFONT_PLACES]
    return next((p for p in candidates if p and p.is_file()), None)


def render_wav(midi: Path, wav: Path, soundfont: Path) -> Path:
    """Render ``midi`` to ``wav`` offline (faster than real time). Raises :class:`RenderError`."""
    fluidsynth = shutil.which("fluidsynth")
    if fluidsynth is None:
        raise RenderError("fluidsynth is not installed; " + HOW_TO_GET)
    command = [fluidsynth, "-ni", "-q", "-T", "wav", "-r", str(SAMPLE_RATE), "-F", str(wav), str(soundfont), str(midi)]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired:
        raise RenderError(f"fluidsynth took more than {RENDER_TIMEOUT_S} s to render {midi}") from None
    if done.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
        detail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
        raise RenderError(f"fluidsynth could not render {midi}: {detail[0]}")
    return wav
