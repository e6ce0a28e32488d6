"""Model-metric plugins (MTAVG-Bench 2.0 Table 4 / AVGen-Bench / AVBench): real models on local weights.

=============  ==========================  ==================================================
metric         outputs                     weights (under $MTAVG_WEIGHTS, or a path option)
=============  ==========================  ==================================================
syncnet        lse_c, lse_d, av offset     syncnet_v2.model (joonson/syncnet_python)
synchformer    desync, offset_s            synchformer_state_dict.pth / <exp>.pt / .onnx
imagebind      ib_av, ib_tv, ib_ta         imagebind_huge.pth or an ONNX export directory
clap           clap_ta                     clap-htsat-unfused/ (laion/clap-htsat-unfused)
audiobox       CE, CU, PC, PQ              audiobox-aesthetics/checkpoint.pt
=============  ==========================  ==================================================

Importing this package costs nothing: torch, transformers and onnxruntime are imported when a model
first runs. ``configure(weights_dir=..., device=...)`` (or MTAVG_WEIGHTS / MTAVG_DEVICE /
MTAVG_<MODEL>_WEIGHTS / MTAVG_<MODEL>_DEVICE) says where weights are and what runs them (cpu by default;
cuda, cuda:N, auto). Every model is loaded once per process. A metric whose package or weights are
missing says so in ``available()`` and, if run anyway, raises ``WeightsNotFound`` / ``ModelUnavailable``
naming what to download and where to put it. Text-conditioned scores (clap, imagebind's ib_tv/ib_ta) use
the clip's prompt: ``clip.extras["prompt"]`` or the ``$MTAVG_PROMPTS`` file (see ``media.prompt_for``).
"""

from __future__ import annotations

from typing import Any

from mtavg.metrics.models import audiobox, clap, imagebind, synchformer, syncnet
from mtavg.metrics.models.weights import (
    ModelUnavailable,
    WeightsNotFound,
    WeightSpec,
    configure,
    resolve,
    resolve_device,
)

MODULES = {"syncnet": syncnet, "synchformer": synchformer, "imagebind": imagebind, "clap": clap,
           "audiobox": audiobox}


def list_models() -> list[dict[str, Any]]:
    """One row per model metric: name, outputs, expected weights, where to get them, available or why not."""
    rows = []
    for name, module in MODULES.items():
        spec: WeightSpec = module.SPEC
        try:
            available = module.status()
        except Exception as exc:  # noqa: BLE001 - a listing must not fail because one check did
            available = f"{type(exc).__name__}: {exc}"
        rows.append({"name": name, "outputs": list(module.OUTPUTS), "weights": list(spec.names),
                     "weights_env": spec.env, "source": spec.source, "available": available is True,
                     "why": None if available is True else str(available)})
    return rows


__all__ = ["MODULES", "ModelUnavailable", "WeightSpec", "WeightsNotFound", "configure", "list_models",
           "resolve", "resolve_device"]
