"""``mididuet-train answers``: the answers' table, as Markdown or JSON, and on the card."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.predict import bundle

from .answers import evaluate_answers, format_answers, format_seeds, training_pieces
from .train import log, write_training_facts

PIECES = ("held-out", "training")


def run_answers(model: Path, data: Path, settings: EngineSettings, as_json: bool, card: Path | None,
                seeds: int = 1, pieces: str = "held-out") -> int:
    """:func:`.answers.evaluate_answers` with one run per seed (``settings.seed`` on), on the
    bundle's held-out pieces or on the pieces it trained on (to tune settings on)."""
    runner = bundle.ModelRunner(model)  # refuses a damaged or foreign file with a clear message
    if card is not None and (seeds != 1 or pieces != "held-out"):
        raise ValueError("--card stores one run on the held-out pieces: leave out --seeds and --pieces")
    names = training_pieces(runner, data) if pieces == "training" else None
    first = settings.seed if settings.seed is not None else 1
    which = f"seed {first}" if seeds == 1 else f"seeds {first}–{first + seeds - 1}"
    log(f"playing phrases of {model.name}'s {pieces} pieces, pulse and expressive ({which})")
    results = evaluate_answers(model, data, [dataclasses.replace(settings, seed=first + k) for k in range(seeds)],
                               pieces=names)
    if as_json:
        print(json.dumps(results[0] if seeds == 1 else results, indent=2, sort_keys=True))
    else:
        print(format_answers(results[0]) if seeds == 1 else format_seeds(results))
    if card is not None:
        from .evaluate_cli import run_evaluate

        write_training_facts(model, {**runner.info.training, "answers": results[0]})
        run_evaluate(model, data, card)
    return 0


def add_answer_flags(parser: argparse.ArgumentParser) -> None:
    """The engine's settings an answer depends on, as ``mididuet run`` takes them."""
    from mididuet.daemon.engine.settings import declared
    from mididuet.daemon.service.flags import add_flag

    from .answers import ANSWER_SETTINGS

    group = parser.add_argument_group("how it plays (as mididuet run)")
    for d in declared(EngineSettings):
        if d.name in ANSWER_SETTINGS and d.name != "seed":
            add_flag(group, d)


def answer_settings(args: argparse.Namespace) -> EngineSettings:
    from mididuet.daemon.service.flags import settings_from_args

    return settings_from_args(args, EngineSettings(seed=args.seed))
