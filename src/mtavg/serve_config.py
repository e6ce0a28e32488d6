"""`mtavg serve-config MODEL`: the vLLM command that serves an omni model for mtavg, and the matching eval.

The flags follow vLLM's documented `vllm serve` options: ``--limit-mm-per-prompt`` takes JSON
(``'{"video": 2, "audio": 2}'``: a pairwise item sends two clips, and audio_mode=separate one WAV per
clip), ``--allowed-local-media-path`` lets requests name ``file://`` paths under one directory (our
``transport=file``: no base64 copy of every clip over the network), ``--max-model-len`` bounds the
context. ``use_audio_in_video`` is not a server flag: the openai backend sends it per request in
``mm_processor_kwargs``.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


class UnknownServeModel(ValueError):
    """No vLLM recipe for this model."""


@dataclass(frozen=True)
class ServeRecipe:
    model: str
    gpus: int  # tensor-parallel size that fits the bf16 weights plus a useful KV cache on 80 GB cards
    max_model_len: int
    note: str


RECIPES: dict[str, ServeRecipe] = {r.model: r for r in (
    ServeRecipe("Qwen/Qwen2.5-Omni-7B", 1, 32768, "thinker only: vLLM returns text, no speech"),
    ServeRecipe("Qwen/Qwen2.5-Omni-3B", 1, 32768, "thinker only: vLLM returns text, no speech"),
    ServeRecipe("Qwen/Qwen3-Omni-30B-A3B-Instruct", 2, 32768, "MoE, ~3B active; bf16 weights need 2 x 80 GB"),
    ServeRecipe("Qwen/Qwen3-Omni-30B-A3B-Thinking", 2, 32768, "reasoning variant; raise --max-tokens"),
)}

#: clips per request: pairwise items carry two, and audio_mode=separate adds one WAV per clip
MM_LIMITS = {"video": 2, "audio": 2}


def recipe_for(model: str) -> ServeRecipe:
    name = model.removeprefix("openai:")
    if name not in RECIPES:
        raise UnknownServeModel(f"no vLLM recipe for {model!r}; supported: {', '.join(RECIPES)}")
    return RECIPES[name]


def serve_command(model: str, *, gpus: int | None = None, port: int = 8000, media_dir: Path | None = None,
                  host: str = "0.0.0.0", max_model_len: int | None = None) -> list[str]:
    """``vllm serve`` argv for one node."""
    recipe = recipe_for(model)
    tp = gpus if gpus is not None else recipe.gpus
    if tp < 1 or not 0 < port < 65536:
        raise ValueError(f"--gpus must be >= 1 and --port in 1..65535 (got {tp}, {port})")
    argv = ["vllm", "serve", recipe.model, "--host", host, "--port", str(port),
            "--tensor-parallel-size", str(tp), "--max-model-len", str(max_model_len or recipe.max_model_len),
            "--limit-mm-per-prompt", json.dumps(MM_LIMITS, separators=(",", ":")),
            "--dtype", "bfloat16", "--seed", "0", "--trust-remote-code"]
    if media_dir is not None:
        argv += ["--allowed-local-media-path", str(Path(media_dir).resolve())]
    return argv


def eval_command(model: str, nodes: Sequence[str], *, port: int = 8000, media_dir: Path | None = None,
                 bench: str = "BENCH", out: str | None = None, per_endpoint: int = 16) -> list[str]:
    """The ``mtavg eval`` argv that load-balances over the nodes' servers."""
    recipe = recipe_for(model)
    if not nodes:
        raise ValueError("at least one node (--node HOST) is needed")
    argv = ["mtavg", "eval", "--bench", bench, "--model", f"openai:{recipe.model}",
            "--out", out or f"runs/{recipe.model.split('/')[-1]}"]
    for node in nodes:
        argv += ["--base-url", f"http://{node}:{port}/v1"]
    argv += ["--per-endpoint-concurrency", str(per_endpoint)]
    if media_dir is not None:
        argv += ["--option", "transport=file"]
    return argv


def serve_config_text(model: str, *, gpus: int | None = None, port: int = 8000, media_dir: Path | None = None,
                      nodes: Sequence[str] = ("node1", "node2"), bench: str = "BENCH") -> str:
    """What `mtavg serve-config` prints: one vllm line per node, then the eval line (valid shell)."""
    recipe = recipe_for(model)
    serve = shlex.join(serve_command(model, gpus=gpus, port=port, media_dir=media_dir))
    lines = [f"# {recipe.model}: {recipe.note}",
             f"# 1. on each of: {', '.join(nodes)}", serve, "",
             "# 2. from any machine that reaches them (least-loaded balancing, failover if a node dies)",
             shlex.join(eval_command(model, nodes, port=port, media_dir=media_dir, bench=bench))]
    if media_dir is not None:
        lines += ["", f"# transport=file: the benchmark's media must sit under {Path(media_dir).resolve()} at the "
                  "same path on every node;",
                  "# no_audio / audio_mode=separate also send derived clips from $MTAVG_CACHE_DIR: put it under "
                  "that directory too."]
    else:
        lines += ["", "# without --media-dir clips travel base64-encoded in each request (no shared disk needed)."]
    return "\n".join(lines) + "\n"
