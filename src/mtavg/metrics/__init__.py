"""Automatic metrics on clips: signal metrics that need no weights, and model-metric plugins.

Every metric reads one shared decode of the clip (``ClipMedia``); ``compute_clip`` and
``compute_metrics`` run them and record per-clip failures without stopping a batch.
"""

from __future__ import annotations

from importlib import import_module

from mtavg.metrics.base import METRICS, ClipMedia, MetricSpec, load_clip, mean_aggregate, register_metric

#: Modules that register built-in metrics when imported (heavy dependencies are imported lazily inside).
BUILTIN_MODULES = ("audio", "video", "shots", "av_offset", "lips", "models")
_import_errors: dict[str, str] = {}


def load_builtin_metrics() -> dict[str, MetricSpec]:
    """Import every built-in metric module once; a module that fails to import is reported, not fatal."""
    for name in BUILTIN_MODULES:
        if name in _import_errors:
            continue
        try:
            import_module(f"mtavg.metrics.{name}")
        except ImportError as exc:
            _import_errors[name] = f"{type(exc).__name__}: {exc}"
    return METRICS


def import_errors() -> dict[str, str]:
    return dict(_import_errors)


__all__ = ["METRICS", "ClipMedia", "MetricSpec", "import_errors", "load_builtin_metrics", "load_clip",
           "mean_aggregate", "register_metric"]
