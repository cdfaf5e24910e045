"""The training tests' corpus: a few real Chopin pieces, linked (never copied) into a tmp dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.midi_files import scale_piece

MIDIS = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "piano-midi" / "midis"
CHOPIN = MIDIS / "Chopin"


def linked(root: Path, files: list[Path]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for path in files:
        (root / path.name).symlink_to(path.resolve())
    return root


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Four real Chopin pieces and a written one."""
    chopin = sorted(CHOPIN.glob("*.mid"))[:4]
    if len(chopin) < 4:
        pytest.fail(f"the Chopin corpus is missing at {CHOPIN}; tests need ../shared/data")
    root = linked(tmp_path_factory.mktemp("corpus"), chopin)
    scale_piece(root / "written.mid")
    return root
