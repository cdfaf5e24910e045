"""The TOML config: precedence, every error message, the example config, and the CLI's exit 2."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from mididuet.daemon.cli import build_parser
from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.live.options import SERVICE_STATS_S
from mididuet.daemon.service import config
from mididuet.daemon.service.config import ALL_OPTIONS, OPTIONS_BY_KEY, ConfigError, resolve
from tests.helpers.jack import REPO


def run_args(*argv: str):
    return build_parser().parse_args(["run", *argv])


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_defaults_without_a_file(config_home: Path) -> None:
    cfg = config.resolve(run_args())
    assert cfg.settings == EngineSettings()
    assert cfg.config_path is None and cfg.in_port is None and cfg.rt_priority == 5 and cfg.retry_s == 2.0


def test_the_default_file_is_read_and_flags_override_it(config_home: Path) -> None:
    write(config_home / "mididuet" / "config.toml",
          'in = "keystation"\nout = "fluid"\nchannel = 3\nphrase-gap = 300\nthru = true\nstats = 5\n')
    cfg = config.resolve(run_args("--channel", "5", "--no-thru", "--out", "fsynth"))
    assert cfg.config_path == config_home / "mididuet" / "config.toml"
    assert cfg.in_port == "keystation", "from the file"
    assert cfg.out_port == "fsynth", "the flag wins"
    assert cfg.settings.channel == 5 and cfg.settings.thru is False, "flags win, switches too"
    assert cfg.settings.phrase_gap_ms == 300.0 and isinstance(cfg.settings.phrase_gap_ms, float)
    assert cfg.stats_interval_s == 5.0


def test_an_explicit_config_replaces_the_default_one(config_home: Path, tmp_path: Path) -> None:
    write(config_home / "mididuet" / "config.toml", "channel = 3\n")
    other = write(tmp_path / "other.toml", 'mode = "jam"\nmodel = "~/m.onnx"\n')
    cfg = config.resolve(run_args("--config", str(other)))
    assert cfg.settings.mode == "jam" and cfg.settings.channel == 1
    assert cfg.model == Path.home() / "m.onnx", "~ is expanded"


def test_service_defaults_apply_only_under_systemd(config_home: Path) -> None:
    terminal = resolve(run_args(), environ={"XDG_CONFIG_HOME": str(config_home)})
    service = resolve(run_args(), environ={"XDG_CONFIG_HOME": str(config_home), "NOTIFY_SOCKET": "@x"})
    assert (terminal.wait, terminal.stats_interval_s) == (False, None)
    assert (service.wait, service.stats_interval_s) == (True, SERVICE_STATS_S)
    told = resolve(run_args("--no-wait", "--stats", "30"),
                   environ={"XDG_CONFIG_HOME": str(config_home), "NOTIFY_SOCKET": "@x"})
    assert (told.wait, told.stats_interval_s) == (False, 30.0)


@pytest.mark.parametrize(("text", "message"), [
    ("chanel = 3\n", "unknown key 'chanel' = 3; did you mean 'channel'? known keys: in, out, api"),
    ("[engine]\nmode = 'jam'\n", "unknown key 'engine'"),
    ("channel = 17\n", "channel must be an integer in range 1..16, got 17"),
    ("channel = \"2\"\n", "channel must be an integer, got \"2\""),
    ("channel = 2.0\n", "channel must be an integer, got 2.0"),
    ("mode = \"waltz\"\n", "mode must be one of 'duet', 'jam', 'solo', got \"waltz\""),
    ("phrase-gap = 20\n", "phrase-gap must be in range 50..10000, got 20"),
    ("phrase-gap = true\n", "phrase-gap must be a number, got true"),
    ("thru = 1\n", "thru must be true or false, got 1"),
    ("top-p = 0\n", "top-p must be in range (0, 1], got 0"),
    ("seed = -1\n", "seed must be a non-negative integer, got -1"),
    ("cc-mute = 64\n", "cc-mute must not be 64: that is the sustain pedal"),
    ("rt-priority = 120\n", "rt-priority must be in range 0..99, got 120"),
    ("stats = 0\n", "stats must be a positive number of seconds, got 0"),
    ("retry = 0\n", "retry must be in range 0.05..60, got 0"),
    ("api = \"pulse\"\n", "api must be one of 'jack', 'alsa', 'coremidi', 'winmm', got \"pulse\""),
    ("log-level = \"loud\"\n", "log-level must be one of 'debug', 'info', 'warning', 'error', got \"loud\""),
    ("model = 3\n", "model must be a path (a string), got 3"),
    ("in = [\"a\"]\n", "in must be a string, got"),
    ("channel = \n", "not valid TOML"),
])
def test_every_bad_config_names_key_value_and_what_is_allowed(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "config.toml", text)
    with pytest.raises(ConfigError) as caught:
        config.resolve(run_args("--config", str(path)))
    assert str(caught.value).startswith(f"{path}: "), "the file is named"
    assert message in str(caught.value)


def test_keys_that_only_clash_together_are_refused_naming_the_source(tmp_path: Path) -> None:
    path = write(tmp_path / "config.toml", "bpm = 100\n")
    with pytest.raises(ConfigError) as caught:
        config.resolve(run_args("--config", str(path), "--clock"))
    assert str(caught.value) == f"{path} and flags: bpm and follow_clock exclude each other: choose one pulse"


def test_a_missing_explicit_config_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"does not exist .*mididuet config --example"):
        config.resolve(run_args("--config", str(tmp_path / "nope.toml")))


def test_bad_flag_values_get_the_same_messages(config_home: Path) -> None:
    with pytest.raises(ConfigError, match=r"^--phrase-gap must be in range 50..10000, got 20.0$"):
        config.resolve(run_args("--phrase-gap", "20"))


def test_the_cli_exits_2_before_opening_anything(tmp_path: Path, config_home: Path) -> None:
    path = write(tmp_path / "config.toml", "velocity = 200\n")
    # No MIDI API can be reached with this environment: reaching the ports would fail
    # differently, so the config error proves nothing was opened first.
    env = {"HOME": str(config_home.parent), "XDG_CONFIG_HOME": str(config_home), "PATH": "/usr/bin:/bin",
           "MIDO_BACKEND": "mido.backends.rtmidi/UNIX_JACK", "JACK_NO_START_SERVER": "1",
           "JACK_DEFAULT_SERVER": "mididuet-no-such-server"}
    done = subprocess.run([sys.executable, "-m", "mididuet.daemon", "run", "--config", str(path)], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 2
    assert done.stderr.strip() == f"mididuet: error: {path}: velocity must be an integer in range 1..127, got 200"


def test_config_check_and_path_commands(tmp_path: Path, config_home: Path) -> None:
    good = write(tmp_path / "good.toml", 'mode = "solo"\nbpm = 90\n')
    bad = write(tmp_path / "bad.toml", "bpm = 1\n")

    def cli(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mididuet.daemon", "config", *argv], cwd=REPO,
                              capture_output=True, text=True, timeout=30, check=False)

    assert cli("--check", str(good)).stdout.strip() == f"{good}: ok (2 keys set)"
    refused = cli("--check", str(bad))
    assert refused.returncode == 2 and "bpm must be in range 20..400, got 1" in refused.stderr
    assert cli("--path").stdout.strip() == str(config_home / "mididuet" / "config.toml")


# --- the example config -----------------------------------------------------------------------
def test_the_shipped_example_is_the_generated_one() -> None:
    shipped = (REPO / "systemd" / "config.example.toml").read_text()
    assert shipped == config.example_config(), "regenerate: mididuet config --example > systemd/config.example.toml"


def test_the_example_has_every_key_once_with_its_default_and_uncommented_it_loads(tmp_path: Path) -> None:
    example = config.example_config()
    keys = [line[2:].split(" = ")[0] for line in example.splitlines() if " = " in line and line.startswith("# ")]
    assert sorted(keys) == sorted(OPTIONS_BY_KEY) and len(keys) == len(ALL_OPTIONS)
    for d in ALL_OPTIONS:
        if d.default is not None:
            assert f"# {d.setting.key} = {config._toml(d.default)}\n" in example
    # Uncommented, every line is valid TOML and a valid config (except bpm with clock).
    active = "\n".join(line[2:] for line in example.splitlines()
                       if " = " in line and line.startswith("# ") and not line.startswith("# clock"))
    path = write(tmp_path / "all.toml", active)
    values = config.read_config(path)
    assert len(values) == len(ALL_OPTIONS) - 1
    assert tomllib.loads(active)["channel"] == 1


def test_config_example_command_prints_it() -> None:
    done = subprocess.run([sys.executable, "-m", "mididuet.daemon", "config", "--example"], cwd=REPO,
                          capture_output=True, text=True, timeout=30, check=True)
    assert done.stdout == config.example_config()


def test_every_option_is_in_exactly_one_group() -> None:
    grouped = [key for _, keys in config.GROUPS for key in keys]
    assert sorted(grouped) == sorted(OPTIONS_BY_KEY)


def test_two_controls_may_swap_numbers(tmp_path: Path) -> None:
    """Each key alone is checked against the others' final values, not their defaults."""
    path = tmp_path / "swap.toml"
    path.write_text("cc-temperature = 22\ncc-mode = 21\n")
    args = build_parser().parse_args(["run", "--config", str(path)])
    settings = config.resolve(args).settings
    assert (settings.cc_temperature, settings.cc_mode) == (22, 21)
    flags = build_parser().parse_args(["run", "--cc-temperature", "22", "--cc-mode", "21"])
    assert config.resolve(flags).settings.cc_mode == 21


def test_config_check_refuses_what_run_would_refuse(tmp_path: Path) -> None:
    path = tmp_path / "both.toml"
    path.write_text("bpm = 96\nclock = true\n")
    done = subprocess.run([sys.executable, "-m", "mididuet.daemon", "config", "--check", str(path)],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 2
    assert "bpm and follow_clock exclude each other" in done.stderr
