"""``mididuet-train answers``: the answers' table, as Markdown or JSON, and on the card."""

from __future__ import annotations

import json
from pathlib import Path

from mididuet.daemon.engine.settings import EngineSettings
from mididuet.daemon.predict import bundle

from .answers import evaluate_answers, format_answers
from .train import log, write_training_facts


def run_answers(model: Path, data: Path, seed: int, as_json: bool, card: Path | None) -> int:
    runner = bundle.ModelRunner(model)  # refuses a damaged or foreign file with a clear message
    log(f"playing phrases of {model.name}'s held-out pieces, pulse and expressive (seed {seed})")
    result = evaluate_answers(model, data, EngineSettings(seed=seed))
    print(json.dumps(result, indent=2, sort_keys=True) if as_json else format_answers(result))
    if card is not None:
        from .evaluate_cli import run_evaluate

        write_training_facts(model, {**runner.info.training, "answers": result})
        run_evaluate(model, data, card)
    return 0
