"""The answer reaches a real synth: FluidSynth as a JACK client renders it to a WAV."""

from __future__ import annotations

import time
import uuid
import wave
from pathlib import Path

import mido
import numpy as np
import pytest

from tests.helpers.jack import JACK_BACKEND, FluidSynth, JackServer, Player, poll

pytestmark = pytest.mark.jack


def _samples(wav: Path) -> tuple[np.ndarray, int]:
    """Samples scaled to -1..1 (channels interleaved) and the frame rate."""
    with wave.open(str(wav)) as f:
        frames = f.readframes(f.getnframes())
        dtype = {2: np.int16, 4: np.int32}[f.getsampwidth()]
        rate, channels = f.getframerate(), f.getnchannels()
    samples = np.frombuffer(frames, dtype=dtype).astype(np.float64) / np.iinfo(dtype).max
    return samples.reshape(-1, channels), rate


def test_answer_is_heard_on_fluidsynth(start_daemon, jack_server: JackServer, player: Player,
                                       tmp_path: Path) -> None:
    wav = tmp_path / "heard.wav"
    try:
        synth = FluidSynth(wav, jack_server.env, client=f"fsynth-{uuid.uuid4().hex[:6]}")
    except FileNotFoundError as err:
        pytest.skip(str(err))
    backend = mido.Backend(JACK_BACKEND, load=True)
    try:
        # FluidSynth registers its MIDI port a moment after it starts.
        assert poll(lambda: synth.port_name in backend.get_output_names(), 10), "FluidSynth's port appeared"
        started = time.monotonic()
        start_daemon("--in", player.name, "--out", synth.port_name, "--phrase-gap", "150",
                     "--bpm", "300", "--answer-tokens", "4", ports=False)
        quiet_until = time.monotonic() - started
        player.play([60, 64, 67])
        time.sleep(1.5)  # gap + 4 tokens at 300 BPM, rendered in real time
    finally:
        synth.stop()
    samples, rate = _samples(wav)
    # Audio starts around when FluidSynth does; nothing sounds before the daemon is ready.
    assert np.abs(samples[: int(rate * quiet_until * 0.5)]).max(initial=0.0) < 1e-4
    assert np.abs(samples).max() > 0.01, "FluidSynth rendered the answer"
