"""mididuet-train: read MIDI, train the WaveNet, export a verified ONNX bundle, evaluate it.

  mididuet-train --data DIR --out FILE.onnx        train and export (the default command)
  mididuet-train evaluate --model FILE --data DIR  score a bundle on its held-out pieces
  mididuet-train compare FILE...                   the quality table of several bundles
  mididuet-train decoding --model FILE...          loops, variety and pitch classes of solo runs
  mididuet-train answers --model FILE              duet answers to held-out phrases against the real ones
  mididuet-train simplify --model FILE             rewrite an older bundle with fewer onnxruntime nodes
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from pathlib import Path

from mididuet.daemon.engine.settings import DEFAULT_MEMORY
from mididuet.daemon.errors import MididuetError

from . import ARCHITECTURES
from .augment import MAX_TRANSPOSE
from .corpus import READERS, default_data_dir
from .dataset import SPLITS

# What the train extra installs (pyproject.toml) that the commands import on use.
TRAIN_MODULES = ("tensorflow", "keras", "tf2onnx", "onnx", "music21", "sklearn", "matplotlib", "tqdm")

TRAIN_EPILOG = """examples:
  mididuet-train --out models/mine.onnx                      # Chopin, the seed's settings
  mididuet-train --data ~/midi/bach --out bach.onnx --card bach.md
  mididuet-train --epochs 2 --min-count 5 --out /tmp/quick.onnx   # a fast smoke run
  mididuet-train --out better.onnx --arch wavenet --transpose 3 --pretrain ../shared/data/piano-midi/midis

The corpus defaults to $MIDIDUET_DATA, else ../shared/data/piano-midi/midis/Chopin.
Training curves and history.csv go to FILE-training/ beside the bundle.
"""


def _int_from(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: an integer in low..high (no upper bound when high is None)."""
    def convert(text: str) -> int:
        value = int(text)
        if value < low or (high is not None and value > high):
            allowed = f"at least {low}" if high is None else f"in range {low}..{high}"
            raise argparse.ArgumentTypeError(f"must be {allowed}, got {value}")
        return value
    return convert


def _between_0_and_1(text: str) -> float:
    """An argparse type: a fraction or a learning rate, strictly between 0 and 1."""
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, got {value}")
    return value


_positive_int = _int_from(1)
_non_negative_int = _int_from(0)


def _weight(text: str) -> float:
    """An argparse type: a weight in 0..1."""
    value = float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"must be in range 0..1, got {value}")
    return value


def _head_setting(what: str, check: Callable[[dict[str, float]], object]) -> Callable[[str], tuple[str, float]]:
    """An argparse type: HEAD=VALUE, checked as training checks it (``check`` raises a
    ValueError that says what is wrong)."""
    def parse(text: str) -> tuple[str, float]:
        name, _, value = text.partition("=")
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be HEAD={what} with {what} a number, got {text!r}") from None
        try:
            check({name: number})
        except ValueError as err:
            raise argparse.ArgumentTypeError(str(err)) from None
        return name, number

    return parse


def _head_weight(text: str) -> tuple[str, float]:
    """HEAD=WEIGHT: a head of the expressive encoding, a finite weight ≥ 0."""
    from mididuet.daemon.music.expression import DEFAULT

    from .loss_weights import training_weights

    return _head_setting("WEIGHT", lambda weights: training_weights(weights, DEFAULT))(text)


def _head_temperature(text: str) -> tuple[str, float]:
    """HEAD=T: a head of the expressive encoding, a finite temperature > 0."""
    from mididuet.daemon.music.expression import DEFAULT

    from .temperature import checked_temperatures

    return _head_setting("T", lambda temperatures: checked_temperatures(temperatures, DEFAULT.heads))(text)


def _head_smoothing(text: str) -> tuple[str, float]:
    """HEAD=EPSILON: an ordered head of the expressive encoding, a share in (0, 0.5)."""
    from mididuet.daemon.music.expression import DEFAULT

    from .smoothing import checked_smoothing

    return _head_setting("EPSILON", lambda smoothing: checked_smoothing(smoothing, DEFAULT.heads))(text)


def train_parser() -> argparse.ArgumentParser:
    from .loss_weights import HEAD_LOSS_WEIGHT

    p = argparse.ArgumentParser(
        prog="mididuet-train", description="Train mididuet's next-token model on a MIDI corpus and "
        "export it as a verified ONNX bundle.\n\nother commands (each has --help):\n"
        + "\n".join(line for line in __doc__.splitlines() if line.startswith("  mididuet-train ")
                     and "(the default command)" not in line), epilog=TRAIN_EPILOG,
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
                        "(default); 'development' leaves out the pieces 'pieces' holds out (the test set) "
                        "and holds out the same share of the rest: train with it to choose a setting, so "
                        "the held-out figures are not tuned; 'windows' is the notebook's random split of "
                        "overlapping windows (test_size 0.3, random_state 42), kept only for comparison")
    p.add_argument("--val-fraction", type=_between_0_and_1, default=0.2,
                   help="share of pieces held out with --split pieces or development (default: 0.2)")
    p.add_argument("--reader", choices=READERS, default="mido",
                   help="'mido' reads all tracks, merging notes that start together into chords "
                        "(seconds); 'music21' reproduces the notebook's reading (minutes)")
    p.add_argument("--seed", type=int, default=42, help="seed for the split and the weights (default: 42)")
    p.add_argument("--split-seed", type=int, default=None,
                   help="seed for the split alone (default: --seed): keep the shipped model's split (42) while "
                        "--seed varies the weights, as runs on --split development must to leave its test "
                        "pieces out")
    p.add_argument("--arch", choices=ARCHITECTURES, default="seed",
                   help="'seed': the notebook's Conv1D network, exactly (default); 'wavenet': gated, "
                        "residual, dilated causal convolutions (WaveNet blocks) whose receptive field is the "
                        "whole 32-token window, trained to predict at every position")
    p.add_argument("--transpose", type=_int_from(0, MAX_TRANSPOSE), default=0, metavar="K",
                   help="also train on every training piece transposed by -K..+K semitones (chords "
                        "re-derived, notes leaving 21..108 dropped); validation pieces are never transposed "
                        "and the vocabulary comes from the untransposed pieces (default: 0, off)")
    p.add_argument("--pretrain", type=Path, metavar="DIR",
                   help="first train on every MIDI file under DIR (e.g. all composers), minus the held-out "
                        "pieces (excluded by content hash), with this corpus's vocabulary; then fine-tune "
                        "on --data (default: off)")
    p.add_argument("--pretrain-epochs", type=_positive_int, default=3,
                   help="most epochs of pre-training, best held-out loss kept (default: 3)")
    p.add_argument("--expressive", action="store_true",
                   help="also learn how each token is played: when (its delay on a grid of the pulse, with "
                        "triplets, dotted values and rests), how long (with the pedal), how loud (against the "
                        "running level) and, for chords, where (bass octave, bass, spread, doublings); the "
                        "network reads the window's rhythm and dynamics and gains a head per attribute, and the "
                        "bundle is format 2 (default: off, the token alone, as the notebook)")
    p.add_argument("--unconditioned", action="store_true",
                   help="with --expressive: heads that do not see the token they describe (to measure what the "
                        "conditioning is worth; default: conditioned on it)")
    p.add_argument("--head-weight", type=_head_weight, action="append", default=[], metavar="HEAD=WEIGHT",
                   help="with --expressive: a head's share of the training loss, beside the token's 1.0 "
                        f"(repeatable, e.g. velocity=2; default: {HEAD_LOSS_WEIGHT:g} each; early stopping "
                        f"weighs every head {HEAD_LOSS_WEIGHT:g} whatever this says). The heads share one "
                        "stack: a head weighed more takes from the others (docs/model-quality.md)")
    p.add_argument("--average-weights", action="store_true",
                   help="score and keep, at each epoch's end, the moving average of the weights over about an "
                        "epoch of steps instead of the last step's (in every phase; default: off)")
    p.add_argument("--head-temperature", type=_head_temperature, action="append", default=[], metavar="HEAD=T",
                   help="with --expressive: bake a temperature into a head after training, its distribution "
                        "p^(1/T) renormalised, so T > 1 flattens a head surer than it should be (repeatable, "
                        "e.g. length=1.2; default: none). Choose T on a --split development run: `mididuet-train "
                        "evaluate` prints each head's best; the shipped split's own held-out pieces would tune "
                        "on its test")
    p.add_argument("--head-smoothing", type=_head_smoothing, action="append", default=[],
                   metavar="HEAD=EPSILON",
                   help="with --expressive: train a head toward the classes beside its target too, 1 - EPSILON "
                        "on the class and EPSILON shared by its two neighbours on the grid, so a head of ordered "
                        "classes (the length's log grid; any head but the bass) grows less sure than training "
                        "pieces make it (repeatable, 0 < EPSILON < 0.5, e.g. length=0.1; default: none). The "
                        "held-out NLL still scores the true class; on the shipped split it did not help the "
                        "length (docs/model-quality.md)")
    p.add_argument("--finetune-lr", type=_between_0_and_1, default=3e-4,
                   help="Adam's learning rate when fine-tuning after --pretrain (default: 3e-4; "
                        "pre-training uses the seed's 1e-3)")
    return p


def evaluate_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mididuet-train evaluate",
        description="Score a bundle's predictions on the pieces held out when it was trained, beside unigram "
        "and n-gram baselines trained on the same pieces: each held-out window on its own, and as the daemon "
        "predicts, each piece streamed from its start with the session memory mixed in (NLL and top-1 for the "
        "model alone and with the memory; each expressive head too).",
        epilog="examples:\n  mididuet-train evaluate --model models/chopin.onnx\n"
               "  mididuet-train evaluate --model models/chopin.onnx --unseen --data ../shared/data/piano-midi/"
               "midis/Liszt --json\n  mididuet-train evaluate --model models/chopin.onnx --memory 0",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", type=Path, required=True, help="the bundle (.onnx) to score")
    p.add_argument("--data", type=Path, default=None,
                   help="the corpus it was trained on, or with --unseen the music to score (default: as for training)")
    p.add_argument("--unseen", action="store_true",
                   help="treat every file under --data as unseen music (a corpus outside the bundle's split); the "
                        "baselines learn from the bundle's training pieces of --train-data")
    p.add_argument("--train-data", type=Path, default=None,
                   help="with --unseen: the corpus the bundle was trained on (default: as for training)")
    p.add_argument("--memory", type=_weight, default=DEFAULT_MEMORY,
                   help=f"the session memory's weight, as mididuet run's --memory (default: {DEFAULT_MEMORY:g})")
    p.add_argument("--json", action="store_true", help="print the figures as JSON: the model alone, with the "
                   "memory, each n-gram baseline on the same tokens, and the counts of pieces and predictions")
    p.add_argument("--card", type=Path, help="rewrite this model card with the measured numbers")
    return p


def compare_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mididuet-train compare",
        description="One Markdown table row per bundle (held-out metrics, epochs, training minutes, "
        "parameters, onnxruntime p99 re-measured now), then the n-gram baselines. The bundles must share "
        "a corpus and held-out pieces.")
    p.add_argument("models", type=Path, nargs="+", help="bundles (.onnx) trained by mididuet-train")
    p.add_argument("--recorded-latency", action="store_true",
                   help="report the p99 measured after training instead of measuring all bundles now")
    return p


def decoding_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mididuet-train decoding",
        description="Generate solo runs with the daemon's engine and sampler for each decoding setting "
        "(greedy, temperature, top-p) and report loop rate, distinct tokens and the Jensen-Shannon "
        "distance of the pitch-class histogram to the corpus's, as a Markdown table.")
    p.add_argument("--model", type=Path, action="append", required=True,
                   help="a bundle to measure (repeat for several)")
    p.add_argument("--data", type=Path, default=None, help="the corpus (default: as for training)")
    p.add_argument("--tokens", type=_positive_int, default=2000, help="tokens per solo run (default: 2000)")
    p.add_argument("--seeds", type=_positive_int, default=5,
                   help="runs per sampling setting, seeds 0..N-1 (default: 5; greedy runs once)")
    p.add_argument("--memory", type=_weight, default=DEFAULT_MEMORY,
                   help=f"the session memory's weight in the solos, 0 to leave it out (default: the daemon's, "
                        f"{DEFAULT_MEMORY:g})")
    return p


def answers_parser() -> argparse.ArgumentParser:
    from .answers_cli import PIECES, add_answer_flags

    p = argparse.ArgumentParser(
        prog="mididuet-train answers",
        description="Play phrases of the bundle's held-out pieces to the engine as duet calls, with the pulse "
        "rhythm and expressive, and measure the answers against what the piece really plays next: IOI-ratio "
        "histogram distance, nPVI, velocity sd, articulation, notes per onset, a two-sample classifier's "
        "accuracy, and how much of the call the answer reuses. Prints a Markdown table (or JSON).")
    p.add_argument("--model", type=Path, required=True, help="the bundle (.onnx) to play")
    p.add_argument("--data", type=Path, default=None, help="the corpus it was trained on (default: as for training)")
    p.add_argument("--seed", type=_non_negative_int, default=1,
                   help="the engine's seed; each phrase is answered with seed + its index (default: 1)")
    p.add_argument("--seeds", type=_positive_int, default=1,
                   help="runs with seeds --seed, --seed + 1, ...: a row each and their mean (default: 1)")
    p.add_argument("--pieces", choices=PIECES, default="held-out",
                   help="whose phrases: the bundle's held-out pieces (the reported table), or the pieces it "
                   "trained on, to choose settings on without tuning on the reported pieces (default: held-out)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--card", type=Path, help="store the figures in the bundle and rewrite this model card")
    add_answer_flags(p)
    return p


def simplify_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="mididuet-train simplify",
        description="Rewrite a bundle's graph as this version's export writes it: the same outputs from fewer "
        "onnxruntime nodes, so each decision costs less (an Embedding's negative-index guard, which ONNX's "
        "Gather does itself, is dropped). The result is compared with the original on random windows before "
        "it is written; metadata and weights are kept.")
    p.add_argument("--model", type=Path, required=True, help="the bundle (.onnx) to rewrite")
    p.add_argument("--out", type=Path, default=None, help="write here instead of in place")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        if argv[:1] == ["evaluate"]:
            from .evaluate_cli import run_evaluate

            args = evaluate_parser().parse_args(argv[1:])
            return run_evaluate(args.model, args.data or default_data_dir(), args.card, args.memory, args.unseen,
                                args.json, args.train_data or default_data_dir())
        if argv[:1] == ["compare"]:
            from .quality import compare

            args = compare_parser().parse_args(argv[1:])
            print(compare(args.models, measure=not args.recorded_latency))
            return 0
        if argv[:1] == ["decoding"]:
            from .decoding import decoding_table

            args = decoding_parser().parse_args(argv[1:])
            print(decoding_table(args.model, args.data or default_data_dir(), args.tokens, args.seeds,
                                 memory=args.memory))
            return 0
        if argv[:1] == ["answers"]:
            from .answers_cli import answer_settings, run_answers

            args = answers_parser().parse_args(argv[1:])
            return run_answers(args.model, args.data or default_data_dir(), answer_settings(args), args.json,
                               args.card, args.seeds, args.pieces)
        if argv[:1] == ["simplify"]:
            from .export import simplify_bundle

            args = simplify_parser().parse_args(argv[1:])
            done = simplify_bundle(args.model, args.out)
            if not done["windows"]:
                print(f"{args.model}: nothing to drop ({int(done['nodes_after'])} nodes); left as it is")
            else:
                print(f"{args.out or args.model}: {int(done['nodes_before'])} → {int(done['nodes_after'])} nodes, "
                      f"outputs within {done['max_abs_diff']:.1e} of the original on {int(done['windows'])} windows")
            return 0
        if argv[:1] == ["train"]:
            argv = argv[1:]
        args = train_parser().parse_args(argv)
        from .train import TrainOptions, run_training

        run_training(TrainOptions(
            data=args.data or default_data_dir(), out=args.out, epochs=args.epochs,
            batch_size=args.batch_size, min_count=args.min_count, split=args.split,
            val_fraction=args.val_fraction, reader=args.reader, seed=args.seed, split_seed=args.split_seed,
            patience=args.patience, arch=args.arch, transpose=args.transpose, pretrain=args.pretrain,
            pretrain_epochs=args.pretrain_epochs, finetune_lr=args.finetune_lr, card=args.card,
            expressive=args.expressive, conditioned=not args.unconditioned, head_weights=dict(args.head_weight),
            average_weights=args.average_weights, head_temperatures=dict(args.head_temperature),
            head_smoothing=dict(args.head_smoothing),
            command=" ".join(["mididuet-train", *map(shlex.quote, argv)])))
        return 0
    except (MididuetError, ValueError) as err:
        print(f"mididuet-train: error: {err}", file=sys.stderr)
        return 2
    except ModuleNotFoundError as err:
        if (err.name or "").split(".")[0] not in TRAIN_MODULES:
            raise
        print(f"mididuet-train: error: {err.name} is not installed; the trainer needs the train extra: "
              "pip install 'mididuet[train]' (or make model, which installs it)", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mididuet-train: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
