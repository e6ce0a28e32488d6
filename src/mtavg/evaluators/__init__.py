"""Evaluator registry: ``--model KIND:NAME`` -> an Evaluator.

Backends register a factory for their KIND; factories receive the name and the benchmark items
(the prior baseline learns from them) plus backend options.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from mtavg.bench.schema import QAItem
from mtavg.evaluators.base import (
    MODALITIES,
    Evaluator,
    EvaluatorError,
    MediaRef,
    Modality,
    PermanentError,
    Request,
    Response,
    TransientError,
)

Factory = Callable[[str, Sequence[QAItem], dict[str, Any]], Evaluator]
_REGISTRY: dict[str, Factory] = {}


class UnknownModel(ValueError):
    pass


def register(kind: str, factory: Factory) -> None:
    _REGISTRY[kind] = factory


def _baseline(name: str, items: Sequence[QAItem], options: dict[str, Any]) -> Evaluator:
    from mtavg.evaluators import baseline as b

    seed = int(options.get("seed", 0))
    makers: dict[str, Callable[[], Evaluator]] = {
        "random": lambda: b.RandomBaseline(seed),
        "prior": lambda: b.PriorBaseline(items, seed),
        "text": b.TextOnlyBaseline,
        "all": b.AllOptionsBaseline,
    }
    if name not in makers:
        raise UnknownModel(f"unknown baseline {name!r}; choose one of: {', '.join(makers)}")
    return makers[name]()


register("baseline", _baseline)


def _lazy(kind: str, module: str, extra: str) -> Factory:
    """A stub that imports a backend module on first use; the module registers its real factory."""

    def load(name: str, items: Sequence[QAItem], options: dict[str, Any]) -> Evaluator:
        from importlib import import_module

        try:
            import_module(module)
        except ImportError as exc:
            raise UnknownModel(f"the {kind!r} backend needs `pip install 'mtavg-bench[{extra}]'` ({exc})") from exc
        if _REGISTRY[kind] is load:
            raise UnknownModel(f"{module} did not register the {kind!r} backend")
        return _REGISTRY[kind](name, items, options)

    return load


for _kind, _module, _extra in (
    ("openai", "mtavg.evaluators.openai_backend", "openai"),
    ("gemini", "mtavg.evaluators.gemini_backend", "gemini"),
    ("hf", "mtavg.evaluators.hf_backend", "hf"),
    ("signal", "mtavg.evaluators.signal", "vad"),
    ("ray", "mtavg.evaluators.ray_backend", "ray"),
):
    register(_kind, _lazy(_kind, _module, _extra))

BASELINES: tuple[str, ...] = ("baseline:random", "baseline:prior", "baseline:text", "baseline:all")


def load_plugins(modules: Sequence[str] = ()) -> None:
    """Import backend modules that call ``register``: the named ones and the ``mtavg.evaluators``
    entry points of installed packages (how a third-party backend plugs in without forking)."""
    from importlib import import_module
    from importlib.metadata import entry_points

    for module in modules:
        import_module(module)
    for ep in entry_points(group="mtavg.evaluators"):
        if ep.name not in _REGISTRY:
            register(ep.name, ep.load())


def make_evaluator(spec: str, items: Sequence[QAItem] = (), **options: Any) -> Evaluator:
    """Build the evaluator named by ``spec`` (``KIND:NAME``, or a bare KIND such as ``signal``)."""
    kind, _, name = spec.partition(":")
    if kind not in _REGISTRY:
        load_plugins()
    if kind not in _REGISTRY:
        raise UnknownModel(f"unknown model kind {kind!r} in {spec!r}; known kinds: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[kind](name, items, options)


__all__ = [
    "BASELINES", "MODALITIES", "Evaluator", "EvaluatorError", "MediaRef", "Modality", "PermanentError",
    "Request", "Response", "TransientError", "UnknownModel", "load_plugins", "make_evaluator", "register",
]
