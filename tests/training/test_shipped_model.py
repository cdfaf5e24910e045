"""The shipped Chopin model: it loads as package data, carries its facts, and its card is true."""

import re
from pathlib import Path

import numpy as np

from mididuet.daemon.predict import bundle
from mididuet.training.card import graph_nodes
from mididuet.training.cli import main

ROOT = Path(__file__).resolve().parents[2]
CHOPIN = ROOT / ".." / "shared" / "data" / "piano-midi" / "midis" / "Chopin"


def test_shipped_model_loads_from_package_data():
    path = bundle.shipped_model_path()
    assert path.resolve() == (ROOT / "models" / "chopin.onnx").resolve()
    runner = bundle.load_bundle()
    facts = runner.info.training
    assert runner.info.window == 32 and runner.info.size == facts["vocabulary_size"]
    assert facts["corpus"] == "Chopin" and facts["pieces"] == 48 and facts["split"] == "pieces"
    assert len(facts["val_pieces"]) == 10
    probs = runner.query(np.zeros(32, dtype=np.int32))
    assert abs(float(probs.sum()) - 1) < 1e-4


def test_shipped_model_beats_the_best_ngram_on_held_out_pieces():
    metrics = bundle.load_bundle().info.training["metrics"]
    best = min(v["nll"] for k, v in metrics.items() if k.endswith("gram"))
    assert metrics["model"]["nll"] < best


def test_evaluate_reproduces_the_model_card(capsys):
    assert main(["evaluate", "--model", str(bundle.shipped_model_path()), "--data", str(CHOPIN)]) == 0
    tables = [block for block in capsys.readouterr().out.strip().split("\n\n") if block.startswith("|")]
    card = (ROOT / "models" / "chopin.md").read_text()
    assert len(tables) >= 4  # the token's, the heads', and streamed with the memory: the token's and the heads'
    for table in tables:
        assert table in card, table
    # And the card names the data's license and the command that made it.
    assert "CC BY-SA 3.0" in card or "BY-SA 3.0 Germany" in card
    assert re.search(r"mididuet-train --data \S+ --out models/chopin\.onnx", card)
    # It describes the graph as shipped.
    assert f"The graph has {graph_nodes(ROOT / 'models' / 'chopin.onnx')} ONNX nodes" in card
