"""mtavg — evaluate audio-video generation (MTAVG-Bench 2.0, AVGen-Bench, AVBench).

``mtavg.score_clip`` / ``mtavg.score_clips`` score clips from Python (see ``mtavg.api``); they are
imported on first use so ``import mtavg`` stays instant.
"""

from typing import Any

__version__ = "0.8.1"
__all__ = ["ClipScore", "ClipScoreError", "ascore_clips", "score_clip", "score_clips"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from mtavg import api

        return getattr(api, name)
    raise AttributeError(f"module 'mtavg' has no attribute {name!r}")
