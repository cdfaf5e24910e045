"""What machine a benchmark ran on, in one line for its output.

The same code's onnxruntime time has differed by up to 2.7× between sessions (RESULTS.md),
probably between hosts, so a figure is read together with the processor, its second-level
cache and the load it ran under.
"""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_model() -> str:
    """The processor's name, family and model as /proc/cpuinfo gives them (the name alone,
    "AMD EPYC", does not tell one generation from another)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            if not key.strip():
                break  # the first processor's block is enough
            fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or "unknown"
    name = fields.get("model name", platform.processor() or "unknown")
    if "cpu family" in fields and "model" in fields:
        return f"{name} (family {fields['cpu family']}, model {fields['model']})"
    return name


def second_level_cache() -> str:
    """The first core's L2 size as sysfs gives it ("1024K"), or "unknown"."""
    for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
        try:
            if (index / "level").read_text().strip() == "2":
                return (index / "size").read_text().strip()
        except OSError:
            continue
    return "unknown"


def loadavg() -> str:
    """The load average over 1, 5 and 15 minutes, or "n/a"."""
    try:
        return " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def describe() -> str:
    """One line: cores, processor, L2 per core, Python, load average (1/5/15 min)."""
    return (f"{os.cpu_count()} cores ({len(os.sched_getaffinity(0))} usable), {cpu_model()}, "
            f"L2 {second_level_cache()} per core; Python {platform.python_version()}; "
            f"load average (1/5/15 min) {loadavg()}")
