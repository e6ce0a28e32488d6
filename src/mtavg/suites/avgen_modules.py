"""AVGen-Bench modules that run offline, from one decode per clip, into module records.

=========  ===========================================  =====================================================
module     with model weights (plugins)                 without (our signal metrics; approximations)
=========  ===========================================  =====================================================
AV         ``synchformer``: ``desync`` (mean |offset| s)  ``av_offset``: |offset_s| when confident, else failed
Lip        ``syncnet``: |av_offset_frames|               ``lips``: |lip_offset_s| · fps (needs ``[faces]``)
Aud        ``audiobox``: PQ (1–10)                       none: the module is not run, and says why
Pitch      –                                            :mod:`mtavg.suites.avgen_pitch` (prompts naming notes)
=========  ===========================================  =====================================================

Our AV and Lip estimators approximate Synchformer and SyncNet; they are not calibrated to them and
their values differ in scale (``av_offset`` refuses to answer on clips without audio-visual events,
where Synchformer always returns a class), so a total built from them is not the published total;
``details.source`` in every record names what produced the value. ``Pitch`` is reported on its own,
beside the published (Gemini-judged) ``Music``; ``--pitch-as-music`` lets it stand in for Music.

A prompt whose clip is missing is a **failed** record in every module (the published code drops it
from the denominator); a clip no prompt names is listed by ``mtavg avgen match`` and not scored.
Per-clip results are kept in ``<out>/<generator>/clips.ndjson`` (not ``.jsonl``: that is for records), so an interrupted run resumes.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mtavg.suites.avgen_prompts import Prompt, PromptSuite, match_clips
from mtavg.suites.avgen_records import ModuleRecord, write_records

OFFLINE_MODULES: tuple[str, ...] = ("AV", "Lip", "Aud", "Pitch")
# module -> (plugin metric, signal metric or None)
SOURCES: dict[str, tuple[str | None, str | None]] = {
    "AV": ("synchformer", "av_offset"), "Lip": ("syncnet", "lips"), "Aud": ("audiobox", None),
    "Pitch": (None, None),
}


@dataclass(frozen=True)
class ModulePlan:
    """Which metric feeds each module here (``None``: the module cannot run, ``why`` says so)."""

    metric: dict[str, str | None]
    why: dict[str, str]

    @property
    def modules(self) -> list[str]:
        return [m for m, metric in self.metric.items() if metric is not None]


def plan_modules(modules: Sequence[str], *, backend: str = "auto") -> ModulePlan:
    """Pick each module's source: ``auto`` (the plugin when its weights are here, else our metric),
    ``models`` (plugins only) or ``signal`` (our metrics only)."""
    from mtavg.metrics import METRICS, load_builtin_metrics

    if backend not in ("auto", "models", "signal"):
        raise ValueError(f"unknown backend {backend!r}; choose auto, models or signal")
    unknown = [m for m in modules if m not in SOURCES]
    if unknown:
        raise ValueError(f"unknown offline module(s) {', '.join(unknown)}; choose from {', '.join(OFFLINE_MODULES)}")
    load_builtin_metrics()
    chosen: dict[str, str | None] = {}
    why: dict[str, str] = {}
    for module in modules:
        if module == "Pitch":
            chosen[module] = "pitch_accuracy"
            continue
        plugin, signal = SOURCES[module]
        reasons = []
        options = {"auto": [plugin, signal], "models": [plugin], "signal": [signal]}[backend]
        chosen[module] = None
        for name in [o for o in options if o]:
            status = METRICS[name].available() if name in METRICS else f"metric {name} is not registered"
            if status is True:
                chosen[module] = name
                break
            reasons.append(f"{name}: {status}")
        if chosen[module] is None:
            why[module] = "; ".join(reasons) or f"no {backend} source for {module}"
    return ModulePlan(chosen, why)


# ---------------------------------------------------------------- one clip
def _clip_task(args: tuple[str, str, list[str], str]) -> dict[str, Any]:
    """Decode once, run the metrics, score pitch: ``{"clip", "metrics": {name: output|{"error"}}}``."""
    from mtavg.metrics import METRICS, load_builtin_metrics
    from mtavg.metrics.base import load_clip
    from mtavg.suites.avgen_pitch import parse_targets, score_pitch

    rel, path, metrics, prompt = args
    load_builtin_metrics()
    out: dict[str, Any] = {"qid": rel, "clip": rel, "metrics": {}, "error": None}
    # Pitch alone needs no picture: skip decoding it (most of a clip's decode time).
    video = any(name != "pitch_accuracy" and "video" in METRICS[name].needs for name in metrics)
    try:
        clip = load_clip(path, video=video)
    except Exception as exc:  # noqa: BLE001 - an unreadable clip fails its records, not the run
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    clip.extras["prompt"] = prompt
    for name in metrics:
        try:
            if name == "pitch_accuracy":
                target = parse_targets(prompt)
                if target is None:
                    out["metrics"][name] = {"not_applicable": "the prompt names no note, scale or chord"}
                elif clip.audio is None:
                    out["metrics"][name] = {"error": "no audio stream"}
                else:
                    out["metrics"][name] = score_pitch(target, clip.audio, clip.sample_rate)
            else:
                out["metrics"][name] = METRICS[name].fn(clip)
        except Exception as exc:  # noqa: BLE001 - one metric's failure stays on its record
            out["metrics"][name] = {"error": f"{type(exc).__name__}: {exc}"}
    out["fps"] = clip.source_fps or clip.fps
    return out


def _failed_task(args: tuple[str, str, list[str], str], exc: BaseException) -> dict[str, Any]:
    return {"qid": args[0], "clip": args[0], "metrics": {}, "error": f"worker failed: {type(exc).__name__}: {exc}",
            "worker_failed": True}


# ---------------------------------------------------------------- metric output -> record
def _value(module: str, metric: str, out: dict[str, Any], fps: float | None) -> tuple[str, float | None, str | None]:
    """(status, raw, error) of one module from its metric's output."""
    if "error" in out:
        return "failed", None, str(out["error"])
    if "not_applicable" in out:
        return "not_applicable", None, None
    if "skipped" in out:
        return "failed", None, f"{metric} skipped: {out['skipped']}"
    if metric == "pitch_accuracy":
        return "ok", float(out["score"]), None
    if metric == "synchformer":
        return "ok", float(out["desync"]), None
    if metric == "av_offset":
        if out.get("offset_s") is None or not out.get("confident"):
            return "failed", None, f"A-V offset not confident ({out.get('reason') or 'no peak'})"
        return "ok", abs(float(out["offset_s"])), None
    if metric == "syncnet":
        return "ok", abs(float(out["av_offset_frames"])), None
    if metric == "lips":
        if not out.get("n_faces"):
            return "not_applicable", None, None
        if out.get("lip_offset_s") is None:
            return "failed", None, "no lip-sync estimate for the detected faces"
        return "ok", abs(float(out["lip_offset_s"])) * float(fps or 25.0), None
    if metric == "audiobox":
        return "ok", float(out["PQ"]), None
    raise ValueError(f"module {module}: no mapping for metric {metric}")


def _details(metric: str, out: dict[str, Any]) -> dict[str, Any]:
    keep = {k: v for k, v in out.items() if isinstance(v, (int, float, str, bool, type(None)))
            or (metric == "pitch_accuracy" and isinstance(v, list))}
    if "source" in keep:  # the metric's own "source" (e.g. av_offset's motion/mouths) keeps its meaning
        keep[f"{metric}_source"] = keep.pop("source")
    return {"source": metric, **keep}


def records_for(plan: ModulePlan, prompt: Prompt, result: dict[str, Any] | None, generator: str) -> list[ModuleRecord]:
    """One record per planned module for ``prompt`` (``result`` None: its clip is missing)."""
    records = []
    for module in plan.modules:
        metric = plan.metric[module]
        base = {"clip": prompt.clip_relpath, "category": prompt.category, "module": module, "generator": generator}
        if result is None:
            records.append(ModuleRecord(**base, raw=None, status="failed", error="clip missing",
                                        details={"source": metric}))
            continue
        if result.get("error"):
            records.append(ModuleRecord(**base, raw=None, status="failed", error=result["error"],
                                        details={"source": metric}))
            continue
        out = result["metrics"].get(metric) or {"error": f"{metric} did not run"}
        status, raw, error = _value(module, metric, out, result.get("fps"))
        records.append(ModuleRecord(**base, raw=raw, status=status, error=error, details=_details(metric, out)))
    return records


# ---------------------------------------------------------------- the run
def run_offline_modules(
    suite: PromptSuite, clips_root: str | Path, out_dir: str | Path, *, generator: str,
    modules: Sequence[str] = OFFLINE_MODULES, backend: str = "auto", jobs: int = 1, executor: Any = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Records for ``generator``'s clips under ``out_dir/<generator>/<Module>.jsonl`` (+ summaries).

    Returns ``{"plan", "unavailable", "files", "unmatched_prompts", "unmatched_clips"}``.
    """
    from mtavg.executors import LocalExecutor
    from mtavg.samples import SampleStore

    plan = plan_modules(modules, backend=backend)
    match = match_clips(suite, clips_root)
    target = Path(out_dir) / generator
    target.mkdir(parents=True, exist_ok=True)
    metrics = sorted({plan.metric[m] for m in plan.modules})
    store = SampleStore(target / "clips.ndjson")
    # A run with other metrics than the stored rows recomputes them: rows hold what their metrics said.
    stale = {q for q, row in store.rows.items() if row.get("worker_failed") or sorted(row.get("metrics", {})) != metrics
             and not row.get("error")}
    store.drop(stale)
    prompts_by_clip = {p.clip_relpath: p for p, _ in match.matched}
    todo = [(p.clip_relpath, str(path), metrics, p.prompt) for p, path in match.matched if p.clip_relpath not in store.rows]
    runner = executor or LocalExecutor(jobs)
    try:
        for result in runner.map(_clip_task, todo, on_error=_failed_task):
            store.append(result)
            if on_done:
                on_done(result)
    finally:
        store.close()
    per_module: dict[str, list[ModuleRecord]] = {m: [] for m in plan.modules}
    for prompt in suite.prompts:
        result = store.rows.get(prompt.clip_relpath) if prompt.clip_relpath in prompts_by_clip else None
        for record in records_for(plan, prompt, result, generator):
            per_module[record.module].append(record)
    files = {m: str(target / f"{m}.jsonl") for m in per_module}
    for module, records in per_module.items():
        write_records(target / f"{module}.jsonl", records)
    return {"plan": plan.metric, "unavailable": plan.why, "files": files,
            "unmatched_prompts": [p.clip_relpath for p in match.unmatched_prompts],
            "unmatched_clips": [c.relative_to(match.clips_root).as_posix() for c in match.unmatched_clips]}
