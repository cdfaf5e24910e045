"""A progress bar for long offline work, on stderr (tqdm when it is installed)."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_bar(items: Iterable[T], desc: str, total: int | None = None) -> Iterator[T]:
    """Yield ``items`` while drawing a bar; in a log (not a terminal) print one line at the end."""
    try:
        from tqdm import tqdm
    except ImportError:
        tqdm = None
    if tqdm is not None and sys.stderr.isatty():
        yield from tqdm(items, desc=desc, total=total, unit="file")
        return
    count = 0
    for item in items:
        count += 1
        yield item
    print(f"{desc}: {count} done", file=sys.stderr, flush=True)
