"""Where benchmark scripts put their numbers: benchmarks/results/<name>.json, with the machine noted."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def save(name: str, numbers: dict) -> Path:
    path = Path(__file__).parent / "results" / f"{name}.json"
    path.parent.mkdir(exist_ok=True)
    numbers = {**numbers, "python": platform.python_version(), "machine": platform.machine(),
               "cpus": os.cpu_count()}
    path.write_text(json.dumps(numbers, indent=1) + "\n")
    return path
