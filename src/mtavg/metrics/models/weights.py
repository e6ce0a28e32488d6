"""Where model weights come from, which device runs them, and per-model options.

Resolution order for a model's weights: an explicit path (function argument), then the per-model
variable ``MTAVG_<MODEL>_WEIGHTS`` (what ``configure`` / a ``--weights`` flag sets), then each expected
name under ``$MTAVG_WEIGHTS``; otherwise ``WeightsNotFound`` names the files, where to get them and
where to put them. Nothing is ever downloaded at run time.

Options live in environment variables (``MTAVG_DEVICE``, ``MTAVG_<MODEL>_DEVICE``, ...) so that
metric worker processes (``mtavg metrics --jobs N``) inherit whatever the parent configured.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass
from pathlib import Path

WEIGHTS_ENV = "MTAVG_WEIGHTS"
DEVICE_ENV = "MTAVG_DEVICE"
PROMPTS_ENV = "MTAVG_PROMPTS"


class WeightsNotFound(FileNotFoundError):
    """A model's weights are not on this machine (the message says what to download and where to put it)."""


class ModelUnavailable(ImportError):
    """A package a model needs is not installed (the message says which and how to install it)."""


@dataclass(frozen=True)
class WeightSpec:
    """What one model family expects on disk."""

    model: str  # "syncnet"; also the env-variable stem: MTAVG_SYNCNET_WEIGHTS
    names: tuple[str, ...]  # accepted names under $MTAVG_WEIGHTS, the first is the canonical one
    source: str  # where to get them, as text (the official repo / release / hub id)
    what: str  # one line: what the file is
    repo: str = ""  # the short name of where they come from, for one-line listings

    def brief(self) -> str:
        """One line for ``mtavg metrics --list``; the full text is in the error raised when it runs."""
        return (f"no weights: put {self.names[0]} (from {self.repo or self.source}) in ${WEIGHTS_ENV} "
                f"or set {self.env}")

    @property
    def env(self) -> str:
        return f"MTAVG_{self.model.upper()}_WEIGHTS"

    def candidates(self) -> list[Path]:
        root = os.environ.get(WEIGHTS_ENV)
        return [Path(root).expanduser() / n for n in self.names] if root else []

    def not_found(self, looked: list[Path], note: str = "") -> WeightsNotFound:
        where = ", ".join(str(p) for p in looked) or f"nothing (${WEIGHTS_ENV} is not set)"
        return WeightsNotFound(
            f"{self.model}: weights not found (looked at {where}){note}. Needs {self.what}: get it from "
            f"{self.source}, then put it at ${WEIGHTS_ENV}/{self.names[0]} (set {WEIGHTS_ENV} to your "
            f"weights directory) or point {self.env} (or the model's weights option) at it; nothing is "
            f"downloaded at run time.")


def resolve(spec: WeightSpec, explicit: str | Path | None = None) -> Path:
    """The weights path for ``spec``: explicit > $MTAVG_<MODEL>_WEIGHTS > $MTAVG_WEIGHTS/<name>."""
    given = explicit or os.environ.get(spec.env)
    if given:
        path = Path(given).expanduser()
        if path.exists():
            return path
        raise spec.not_found([path])
    looked = spec.candidates()
    for path in looked:
        if path.exists():
            return path
    raise spec.not_found(looked)


def weights_status(spec: WeightSpec) -> bool | str:
    try:
        resolve(spec)
    except WeightsNotFound:
        return spec.brief()
    return True


def missing_packages(*names: str) -> list[str]:
    """Import names that are not installed (find_spec: nothing is imported, so this stays cheap)."""
    out = []
    for name in names:
        try:
            if importlib.util.find_spec(name) is None:
                out.append(name)
        except (ImportError, ValueError):
            out.append(name)
    return out


def require(model: str, *packages: str, hint: str = "") -> None:
    if missing := missing_packages(*packages):
        raise ModelUnavailable(f"{model}: needs the Python package(s) {', '.join(missing)}"
                               f"{': ' + hint if hint else ''}")


def option(model: str, key: str, default: str | None = None) -> str | None:
    """``MTAVG_<MODEL>_<KEY>``, else ``MTAVG_<KEY>``, else default."""
    return os.environ.get(f"MTAVG_{model.upper()}_{key.upper()}") or os.environ.get(f"MTAVG_{key.upper()}") \
        or default


def resolve_device(device: str | None = None, model: str = "") -> str:
    """"cpu" by default; "cuda"/"cuda:N" when asked (and present); "auto" = cuda when available."""
    default = option(model, "device") if model else os.environ.get(DEVICE_ENV)
    wanted = (device or default or "cpu").strip().lower()
    if wanted == "cpu":
        return "cpu"
    import torch

    if wanted == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if wanted.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ValueError(f"{model or 'models'}: device {wanted!r} requested but CUDA is not available "
                             "(install a CUDA build of torch, or use device=cpu)")
        return wanted
    raise ValueError(f"{model or 'models'}: unknown device {wanted!r}; use cpu, cuda, cuda:N or auto")


def configure(weights_dir: str | Path | None = None, device: str | None = None,
              prompts: str | Path | None = None, **model_weights: str | Path | None) -> None:
    """Set the weights directory, device, prompts file and per-model weight paths for this process and
    the worker processes it starts (e.g. from ``mtavg metrics --weights DIR --device cuda``)."""
    if weights_dir is not None:
        os.environ[WEIGHTS_ENV] = str(Path(weights_dir).expanduser())
    if device is not None:
        os.environ[DEVICE_ENV] = device
    if prompts is not None:
        os.environ[PROMPTS_ENV] = str(Path(prompts).expanduser())
    for model, path in model_weights.items():
        if path is not None:
            os.environ[f"MTAVG_{model.upper()}_WEIGHTS"] = str(Path(path).expanduser())
