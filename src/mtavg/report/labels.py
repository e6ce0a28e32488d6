"""What tables, figures and the item browser call an evaluator run.

The model name, the modality when it is not full input, and, when runs of one model differ in settings
(``results.json``'s ``fingerprint``: seed, temperature, frames...), the settings that differ, so two seeds
of ``baseline:random`` are two rows, not one name twice. A result dict may carry its own ``label`` (the
site sets one that also tells apart runs with equal settings by their folders); it wins.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["MODALITY_LABELS", "evaluator_labels", "model_labels", "settings_of"]

MODALITY_LABELS = {"full": "Full input", "no_audio": "w/o Audio", "no_vision": "w/o Vision", "text": "Text-only"}


def settings_of(fingerprint: str | None) -> dict[str, str]:
    """An evaluator fingerprint as setting -> value text: JSON objects (``openai:``, ``hf:``, ``gemini:``),
    ``k=v[,k=v]`` (the baselines), or the whole string as one ``settings`` value."""
    if not fingerprint:
        return {}
    try:
        parsed = json.loads(fingerprint)
    except ValueError:
        parsed = None
    if isinstance(parsed, dict):
        return {str(k): v if isinstance(v, str) else json.dumps(v, sort_keys=True) for k, v in parsed.items()}
    pairs = [part.split("=", 1) for part in fingerprint.split(",")]
    if all(len(p) == 2 and p[0].strip() for p in pairs):
        return {k.strip(): v.strip() for k, v in pairs}
    return {"settings": fingerprint}


def model_labels(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Per result: its model, plus ``[k=v, ...]`` for the settings in which it differs from another run
    of the same model (a setting one run lacks counts as differing)."""
    by_model: dict[str, list[int]] = {}
    for i, r in enumerate(results):
        by_model.setdefault(str(r.get("model", "?")), []).append(i)
    labels = [str(r.get("model", "?")) for r in results]
    for model, members in by_model.items():
        configs = [settings_of(results[i].get("fingerprint")) for i in members]
        keys = sorted({k for c in configs for k in c})
        differing = [k for k in keys if len({c.get(k) for c in configs}) > 1]
        if not differing:
            continue
        for i, config in zip(members, configs, strict=True):
            shown = ", ".join(f"{k}={config.get(k, '-')}" for k in differing)
            labels[i] = f"{model} [{shown}]"
    return labels


def evaluator_labels(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Row labels: a result's own ``label`` if it has one, else its model label and the modality when not full."""
    out = []
    for r, model_label in zip(results, model_labels(results), strict=True):
        if r.get("label"):
            out.append(str(r["label"]))
            continue
        modality = r.get("modality") or "full"
        out.append(model_label if modality == "full" else f"{model_label} ({MODALITY_LABELS.get(modality, modality)})")
    return out
