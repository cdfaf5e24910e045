"""mididuet-train: read MIDI, train the WaveNet, export a verified ONNX bundle, evaluate it.

  mididuet-train --data DIR --out FILE.onnx        train and export (the default command)
  mididuet-train evaluate --model FILE --data DIR  score a bundle on its held-out pieces
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from daemon.errors import MididuetError
from training.corpus import READERS, default_data_dir
from training.dataset import SPLITS

TRAIN_EPILOG = """examples:
  mididuet-train --out models/mine.onnx                      # Chopin, the seed's settings
  mididuet-train --data ~/midi/bach --out bach.onnx --card bach.md
  mididuet-train --epochs 2 --min-count 5 --out /tmp/quick.onnx   # a fast smoke run

The corpus defaults to $MIDIDUET_DATA, else ../shared/data/piano-midi/midis/Chopin.
Training curves and history.csv go to FILE-training/ beside the bundle.
"""


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


def train_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mididuet-train", description="Train mididuet's next-token model on a MIDI corpus and "
        "export it as a verified ONNX bundle.", epilog=TRAIN_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=None,
                   help="directory of .mid files, searched recursively (default: $MIDIDUET_DATA or the "
                        "shared Chopin set)")
    p.add_argument("--out", type=Path, required=True, help="the bundle to write (.onnx)")
    p.add_argument("--card", type=Path, help="also write a Markdown model card here")
    p.add_argument("--epochs", type=_positive_int, default=50,
                   help="most epochs to train; the best validation loss is kept and training stops "
                        "early when it stops improving (default: 50)")
    p.add_argument("--patience", type=_positive_int, default=5,
                   help="epochs without a better validation loss before stopping (default: 5)")
    p.add_argument("--batch-size", type=_positive_int, default=128, help="windows per step (default: 128)")
    p.add_argument("--min-count", type=_positive_int, default=40,
                   help="a token joins the vocabulary when it occurs this often in the training pieces; "
                        "rarer tokens are dropped from the sequences (default: 40, as the notebook)")
    p.add_argument("--split", choices=SPLITS, default="pieces",
                   help="'pieces' holds out whole pieces, so validation is music the model never saw "
                        "(default); 'windows' is the notebook's random split of overlapping windows "
                        "(test_size 0.3, random_state 42), kept only for comparison")
    p.add_argument("--val-fraction", type=_fraction, default=0.2,
                   help="share of pieces held out with --split pieces (default: 0.2)")
    p.add_argument("--reader", choices=READERS, default="mido",
                   help="'mido' reads all tracks, merging notes that start together into chords "
                        "(seconds); 'music21' reproduces the notebook's reading (minutes)")
    p.add_argument("--seed", type=int, default=42, help="seed for the split and the weights (default: 42)")
    p.add_argument("--arch", default="seed", help="network architecture (default: seed, the notebook's)")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mididuet-train evaluate",
        description="Score a bundle's next-token predictions on the pieces held out when it was "
        "trained, beside unigram and n-gram baselines trained on the same pieces.")
    p.add_argument("--model", type=Path, required=True, help="the bundle (.onnx) to score")
    p.add_argument("--data", type=Path, default=None, help="the corpus it was trained on (default: as for training)")
    p.add_argument("--card", type=Path, help="rewrite this model card with the measured numbers")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["evaluate"]:
            from training.evaluate_cli import run_evaluate

            args = evaluate_parser().parse_args(argv[1:])
            return run_evaluate(args.model, args.data or default_data_dir(), args.card)
        if argv[:1] == ["train"]:
            argv = argv[1:]
        args = train_parser().parse_args(argv)
        from training.train import TrainOptions, run_training

        run_training(TrainOptions(
            data=args.data or default_data_dir(), out=args.out, epochs=args.epochs,
            batch_size=args.batch_size, min_count=args.min_count, split=args.split,
            val_fraction=args.val_fraction, reader=args.reader, seed=args.seed,
            patience=args.patience, arch=args.arch, card=args.card,
            command=" ".join(["mididuet-train", *map(shlex.quote, argv)])))
        return 0
    except (MididuetError, ValueError) as err:
        print(f"mididuet-train: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mididuet-train: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
