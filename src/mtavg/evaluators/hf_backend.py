"""``hf:REPO_OR_PATH`` — Qwen2.5-Omni run locally with transformers (the thinker: text out, no speech).

Real use::

    pip install 'mtavg-bench[hf]' torch==2.13.0   # CPU; on a GPU machine install a CUDA build of torch
    hf download Qwen/Qwen2.5-Omni-7B              # older huggingface_hub: huggingface-cli download ...
    mtavg eval --bench B --model hf:Qwen/Qwen2.5-Omni-7B --option device=cuda --concurrency 1 --out runs/q

Options (``--option KEY=VALUE``): device (cpu, cuda, cuda:1, auto = spread over GPUs), dtype (auto,
bfloat16, float16, float32), fps, max_frames, max_pixels, min_pixels, max_new_tokens, sample_rate,
attn_implementation (e.g. flash_attention_2), local_files_only (default true: never download at run time).
Memory: the 7B thinker in bf16 needs about 16 GB of GPU memory plus the clip's activations (24 GB is
comfortable at 32 frames of 360x420); Qwen2.5-Omni-3B about half. CPU works but is very slow (minutes
per item): keep max_frames / max_pixels small and raise ``--timeout``. One generation runs at a time.

Audio reaches the model the way Qwen2.5-Omni was trained: with video, the clip's own track interleaved
with the frames in 2 s chunks (``use_audio_in_video``, TMRoPE time alignment); without video
(no_vision) as an audio input; no_audio and text send none. Without torchvision a numpy port of the
Qwen2-VL video preprocessing stands in (PIL's bicubic resize: pixel values differ slightly).
"""

from __future__ import annotations

import asyncio
import json
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.evaluators import register
from mtavg.evaluators.base import Evaluator, PermanentError, Request, Response

SYSTEM_PROMPT = ("You are Qwen, a virtual human developed by the Qwen Team, Alibaba Group, capable of "
                 "perceiving auditory and visual inputs, as well as generating text and speech.")
YES_VARIANTS = ("Yes", " Yes", "yes", " yes", "YES", " YES")
NO_VARIANTS = ("No", " No", "no", " no", "NO", " NO")
_REPO_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


class HFUnavailable(PermanentError, ValueError):
    """The backend cannot start (ValueError too, so the CLI prints the message, not a trace)."""


class HFModelNotFound(HFUnavailable):
    """The weights are not on this machine."""


def _not_found(model_path: str, reason: str) -> HFModelNotFound:
    repo = model_path if _REPO_ID.match(model_path) and "/" in model_path else "Qwen/Qwen2.5-Omni-7B"
    return HFModelNotFound(
        f"hf: model {model_path!r} was not found locally ({reason}). Download it first with "
        f"`hf download {repo}` (older huggingface_hub: `huggingface-cli download {repo}`), then use "
        f"hf:{repo} or hf:/path/to/a/directory/with/config.json; nothing is downloaded at run time "
        f"unless you pass --option local_files_only=false.")


@dataclass
class _Prepared:
    """One request as chat + media: what really goes to the model."""

    conversation: list[dict[str, Any]] = field(default_factory=list)
    videos: list[np.ndarray] = field(default_factory=list)
    audios: list[np.ndarray] = field(default_factory=list)
    use_audio_in_video: bool = False
    fps: float | None = None


class QwenOmniEvaluator(Evaluator):
    def __init__(
        self, model_path: str, *, device: str = "cpu", dtype: str = "auto", fps: float = 2.0,
        max_frames: int = 32, max_pixels: int = 360 * 420, min_pixels: int | None = None,
        max_new_tokens: int = 256, sample_rate: int = 16000, local_files_only: bool | None = None,
        attn_implementation: str | None = None, system_prompt: str = SYSTEM_PROMPT,
    ) -> None:
        if not model_path:
            raise ValueError("hf: a model repo id or directory is required (hf:Qwen/Qwen2.5-Omni-7B)")
        if fps <= 0 or max_frames < 1 or max_pixels < 1 or max_new_tokens < 1 or sample_rate < 1:
            raise ValueError("hf: fps, max_frames, max_pixels, max_new_tokens, sample_rate must be positive")
        self.model_path, self.device = model_path, device
        self.fps, self.max_frames, self.max_new_tokens = float(fps), int(max_frames), int(max_new_tokens)
        self.max_pixels, self.sample_rate, self.system_prompt = int(max_pixels), int(sample_rate), system_prompt
        # Qwen's reference lower bound (128 patches of 28x28), never above the upper one
        self.min_pixels = int(min_pixels) if min_pixels else min(128 * 28 * 28, self.max_pixels)
        self.name = f"hf:{model_path}"
        self.fingerprint = json.dumps({  # what changes the model's input or decoding
            "fps": self.fps, "max_frames": self.max_frames, "max_pixels": self.max_pixels, "dtype": dtype,
            "min_pixels": self.min_pixels, "sample_rate": self.sample_rate, "system": system_prompt,
            "max_new_tokens": self.max_new_tokens, "decoding": "greedy"}, sort_keys=True)
        self._lock = threading.Lock()  # batch size 1: one forward/generate at a time
        self.model, self.processor = _load(model_path, device, dtype, local_files_only, attn_implementation)
        tok = self.processor.tokenizer
        self._eos = [i for i in tok.convert_tokens_to_ids(["<|im_end|>", "<|endoftext|>"]) if i is not None]
        self._yes, self._no = _single_token_ids(tok, YES_VARIANTS), _single_token_ids(tok, NO_VARIANTS)

    def __repr__(self) -> str:
        return f"QwenOmniEvaluator({self.model_path!r}, device={self.device!r})"

    def _prepare(self, request: Request) -> _Prepared:
        from mtavg.media import MediaError, probe
        from mtavg.media.prepare import decode_clip

        prep, content = _Prepared(), []
        paired: list[tuple[dict[str, Any], np.ndarray | None]] = []  # (video entry, its soundtrack)
        try:
            # the file's own length (videos.jsonl may be stale); one rate for all clips, low enough that
            # none is thinned, so every frame time is exactly k/fps (what TMRoPE's positions assume)
            durations = [probe(str(ref.path)).duration_s or ref.duration_s or 0.0
                         for ref in request.media if ref.use_video]
            if durations:
                prep.fps = min(self.fps, self.max_frames / max(durations)) if max(durations) > 0 else self.fps
            for ref in (r for r in request.media if r.use_video or r.use_audio):
                clip = decode_clip(ref.path, fps=prep.fps, max_frames=self.max_frames, max_pixels=self.max_pixels,
                                   sample_rate=self.sample_rate, with_video=ref.use_video,
                                   with_audio=ref.use_audio and ref.has_audio)
                audio = clip.audio if clip.audio is not None and clip.audio.size else None
                if len(request.media) > 1:
                    content.append({"type": "text", "text": f"{ref.role}:"})
                if clip.frames is not None:
                    prep.videos.append(clip.frames)
                    content.append({"type": "video", "video": str(ref.path)})
                    paired.append((content[-1], audio))
                elif audio is not None:
                    prep.audios.append(audio)
                    content.append({"type": "audio", "audio": str(ref.path)})
        except MediaError as exc:
            raise PermanentError(f"{request.qid}: {exc}") from exc
        # A soundtrack rides inside its video (interleaved, time-aligned) when every video has one;
        # otherwise each goes in as a separate audio right after its video.
        if paired and all(a is not None for _, a in paired):
            prep.use_audio_in_video = True
            prep.audios = [a for _, a in paired] + prep.audios
        for entry, audio in paired:
            if audio is not None and not prep.use_audio_in_video:
                prep.audios.append(audio)
                content.insert(content.index(entry) + 1, {"type": "audio", "audio": entry["video"]})
        prep.conversation = [{"role": "system", "content": [{"type": "text", "text": self.system_prompt}]},
                             {"role": "user", "content": [*content, {"type": "text", "text": request.prompt}]}]
        return prep

    def _inputs(self, prep: _Prepared) -> Any:
        """Chat template + processor: token ids, mel features, video patches, as tensors on the model."""
        proc = self.processor
        text = proc.apply_chat_template(prep.conversation, add_generation_prompt=True, tokenize=False)
        kwargs: dict[str, Any] = {"text": [text], "return_tensors": "pt", "padding": True}
        if prep.audios:
            kwargs["audio"] = prep.audios
        if prep.videos:
            vkw = {"fps": prep.fps, "do_sample_frames": False,
                   "size": {"shortest_edge": self.min_pixels, "longest_edge": self.max_pixels}}
            if "cap_pixels_per_frame" in getattr(proc.video_processor.valid_kwargs, "__annotations__", {}):
                vkw["cap_pixels_per_frame"] = False  # max_pixels is the per-frame budget, as in the papers
            kwargs.update(videos=prep.videos, videos_kwargs=vkw)
        if prep.use_audio_in_video and hasattr(proc, "_resolve_audio_from_video"):
            # newer transformers call the processor's flag load_audio_from_video and map tracks to videos
            n_solo = len(prep.audios) - len(prep.videos)
            kwargs.update(load_audio_from_video=True,
                          audio_from_video_indices=[*range(len(prep.videos)), *[None] * n_solo])
        elif prep.use_audio_in_video:
            kwargs["use_audio_in_video"] = True
        inputs = proc(**kwargs).to(self.model.device)
        for key in ("pixel_values_videos", "input_features"):  # not video_second_per_grid: keep it exact
            if key in inputs:
                inputs[key] = inputs[key].to(self.model.dtype)
        return inputs

    async def respond(self, request: Request) -> Response:
        return await asyncio.to_thread(self._run, request, False)

    async def yes_probability(self, request: Request) -> float:
        return await asyncio.to_thread(self._run, request, True)

    def _run(self, request: Request, yes_no: bool) -> Any:
        """Blocking work, in a worker thread: decode (concurrently), then one model call under the lock."""
        import torch

        prep = self._prepare(request)
        try:
            with self._lock, torch.inference_mode():
                inputs = self._inputs(prep)
                if yes_no:
                    logits = self.model(**inputs, use_audio_in_video=prep.use_audio_in_video).logits
                    return yes_share(logits[0, -1], self._yes, self._no)
                n_prompt = int(inputs["input_ids"].shape[1])
                new = self.model.generate(
                    **inputs, use_audio_in_video=prep.use_audio_in_video, max_new_tokens=self.max_new_tokens,
                    do_sample=False, num_beams=1, eos_token_id=self._eos, pad_token_id=self._eos[-1],
                )[:, n_prompt:]
                raw = self.processor.batch_decode(new, skip_special_tokens=True,
                                                  clean_up_tokenization_spaces=False)[0].strip()
        except RuntimeError as exc:  # torch.OutOfMemoryError is one; the same inputs would fail again
            if "out of memory" in str(exc).lower():
                raise PermanentError(f"{request.qid}: out of memory; lower max_frames / max_pixels") from exc
            raise
        if not raw:
            raise PermanentError(f"{request.qid}: the model generated no text ({new.shape[1]} special tokens)")
        return Response(
            raw=raw, usage={"prompt_tokens": n_prompt, "completion_tokens": int(new.shape[1])},
            audio_sent="input_features" in inputs, frames_sent=sum(len(v) for v in prep.videos),
            meta={"fps": prep.fps, "max_frames": self.max_frames, "max_pixels": self.max_pixels,
                  "use_audio_in_video": prep.use_audio_in_video},
        )


def yes_share(logits: Any, yes_ids: list[int], no_ids: list[int]) -> float:
    """P(Yes)/(P(Yes)+P(No)) from next-token logits, each summed over its token variants.

    As sigmoid(logsumexp(yes) - logsumexp(no)): the softmax normaliser cancels, and tiny
    probabilities cannot underflow to 0/0.
    """
    import torch

    scores = logits.float()
    return float(torch.sigmoid(torch.logsumexp(scores[yes_ids], -1) - torch.logsumexp(scores[no_ids], -1)))


def _single_token_ids(tokenizer: Any, variants: tuple[str, ...]) -> list[int]:
    """Ids of the variants that are one token in this vocabulary (" Yes" is one in Qwen's)."""
    ids = [tokenizer.encode(v, add_special_tokens=False) for v in variants]
    ids = list(dict.fromkeys(int(e[0]) for e in ids if len(e) == 1))
    if not ids:
        raise HFUnavailable(f"hf: the tokenizer has no single token for any of {variants}")
    return ids


def _load(model_path: str, device: str, dtype: str, local_files_only: bool | None,
          attn_implementation: str | None) -> tuple[Any, Any]:
    try:
        import torch
        import transformers
        from transformers import Qwen2_5OmniThinkerForConditionalGeneration  # noqa: F401 - >= 4.52
        from transformers.utils import cached_file
    except ImportError as exc:
        raise HFUnavailable(f"hf: needs torch and transformers>=4.52 with Qwen2.5-Omni ({exc}): pip install "
                            "'mtavg-bench[hf]' torch==2.13.0 (a CUDA build of torch on GPU machines)") from exc
    if dtype != "auto" and not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ValueError(f"hf: dtype={dtype!r}; choose auto, bfloat16, float16 or float32")
    path = Path(model_path).expanduser()
    if path.exists() and not (path / "config.json").is_file():
        raise _not_found(model_path, f"{path} has no config.json")
    if not path.exists() and (not _REPO_ID.match(model_path) or model_path.startswith((".", "~"))):
        raise _not_found(model_path, "no such directory")
    source = str(path) if path.exists() else model_path
    kw: dict[str, Any] = {"local_files_only": True if local_files_only is None else bool(local_files_only)}
    model_kw: dict[str, Any] = {**kw, "attn_implementation": attn_implementation}
    model_kw["dtype" if int(transformers.__version__.split(".")[0]) >= 5 else "torch_dtype"] = \
        "auto" if dtype == "auto" else getattr(torch, dtype)
    if device == "auto":
        model_kw["device_map"] = "auto"
    try:
        config = json.loads(Path(cached_file(source, "config.json", **kw)).read_text(encoding="utf-8"))
        if config.get("model_type") == "qwen2_5_omni":  # the release (thinker + talker): skip the talker
            model = transformers.Qwen2_5OmniForConditionalGeneration.from_pretrained(
                source, enable_audio_output=False, **model_kw).thinker
        else:  # a thinker-only checkpoint
            model = transformers.Qwen2_5OmniThinkerForConditionalGeneration.from_pretrained(source, **model_kw)
        processor = _load_processor(source, kw)
    except OSError as exc:  # transformers' "not cached" / "does not appear to have a file named ..."
        hub_only = kw["local_files_only"] and not path.exists()  # transformers' text speaks of connecting
        raise _not_found(model_path, "not in the Hugging Face cache" if hub_only
                         else str(exc).strip().splitlines()[0][:300]) from exc
    return (model if device == "auto" else model.to(device)).eval(), processor


def _load_processor(source: str, kw: dict[str, Any]) -> Any:
    from transformers import AutoImageProcessor, AutoTokenizer, Qwen2_5OmniProcessor, WhisperFeatureExtractor
    from transformers.utils import cached_file

    try:
        return Qwen2_5OmniProcessor.from_pretrained(source, **kw)
    except ImportError as exc:
        if "torchvision" not in str(exc).lower():
            raise

    def read(name: str) -> str | None:
        file = cached_file(source, name, _raise_exceptions_for_missing_entries=False, **kw)
        return Path(file).read_text(encoding="utf-8") if file else None

    # No torchvision: the same processor, assembled from its parts around the numpy video processor.
    template = read("chat_template.jinja") or json.loads(read("chat_template.json") or "{}").get("chat_template")
    settings: dict[str, Any] = {}
    for name, key in (("video_preprocessor_config.json", None), ("processor_config.json", "video_processor"),
                      ("preprocessor_config.json", None)):  # v4 file, v5 nested, the release's shared file
        data = json.loads(read(name) or "{}")
        if settings := (data.get(key) if key else data) or {}:
            break
    return omni_processor(
        image_processor=AutoImageProcessor.from_pretrained(source, **kw),
        video_processor=numpy_video_processor(settings),
        feature_extractor=WhisperFeatureExtractor.from_pretrained(source, **kw),
        tokenizer=AutoTokenizer.from_pretrained(source, **kw), chat_template=template,
    )


def omni_processor(**parts: Any) -> Any:
    """Qwen2_5OmniProcessor(**parts) that also takes the numpy video processor (transformers' type check
    looks video processor classes up among the torchvision-backed ones, absent without torchvision)."""
    from transformers import Qwen2_5OmniProcessor
    from transformers.video_processing_utils import VideoProcessorMixin

    class Processor(Qwen2_5OmniProcessor):
        def check_argument_for_proper_class(self, argument_name: str, argument: Any) -> Any:
            if argument_name == "video_processor" and isinstance(argument, VideoProcessorMixin):
                return type(argument)
            return super().check_argument_for_proper_class(argument_name, argument)

    Processor.__name__ = Processor.__qualname__ = "Qwen2_5OmniProcessor"  # what save_pretrained records
    return Processor(**parts)


def numpy_video_processor(settings: dict[str, Any] | None = None) -> Any:
    """Qwen2-VL video preprocessing without torchvision: resize to multiples of 28 within
    [shortest_edge, longest_edge] pixels, CLIP normalisation, (2 frames x 14 x 14) patches in the 2x2
    merge order of the vision tower. Same output keys and layout as the stock Qwen2VLVideoProcessor."""
    from PIL import Image
    from transformers.feature_extraction_utils import BatchFeature
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize
    from transformers.video_processing_utils import VideoProcessorMixin

    s = dict(settings or {})

    class NumpyQwen2VLVideoProcessor(VideoProcessorMixin):
        model_input_names = ["pixel_values_videos", "video_grid_thw"]
        patch_size, temporal_patch_size, merge_size = (s.get("patch_size", 14), s.get("temporal_patch_size", 2),
                                                       s.get("merge_size", 2))
        mean = np.asarray(s.get("image_mean", OPENAI_CLIP_MEAN), np.float32)[:, None, None]
        std = np.asarray(s.get("image_std", OPENAI_CLIP_STD), np.float32)[:, None, None]
        size = {"shortest_edge": s.get("min_pixels", 56 * 56), "longest_edge": s.get("max_pixels", 28 * 28 * 1280),
                **(s.get("size") or {})}

        def preprocess(self, videos: Any, size: dict[str, int] | None = None, return_tensors: Any = None,
                       **_: Any) -> BatchFeature:
            size, (ps, tp, ms) = {**self.size, **(size or {})}, (self.patch_size, self.temporal_patch_size,
                                                                 self.merge_size)
            patches, grids = [], []
            for frames in (videos if isinstance(videos, (list, tuple)) else [videos]):
                frames = np.asarray(frames)
                h, w = smart_resize(frames.shape[1], frames.shape[2], factor=ps * ms,
                                    min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
                x = np.stack([np.asarray(Image.fromarray(f).resize((w, h), Image.BICUBIC)) for f in frames])
                x = (x.astype(np.float32).transpose(0, 3, 1, 2) / 255.0 - self.mean) / self.std  # T,C,H,W
                if pad := -len(x) % tp:  # repeat the last frame to fill the last temporal patch
                    x = np.concatenate([x, np.repeat(x[-1:], pad, axis=0)])
                gt, gh, gw = len(x) // tp, h // ps, w // ps
                x = x.reshape(gt, tp, 3, gh // ms, ms, ps, gw // ms, ms, ps).transpose(0, 3, 6, 4, 7, 2, 1, 5, 8)
                patches.append(x.reshape(gt * gh * gw, 3 * tp * ps * ps))
                grids.append([gt, gh, gw])
            return BatchFeature({"pixel_values_videos": np.concatenate(patches),
                                 "video_grid_thw": np.asarray(grids, dtype=np.int64)}, tensor_type=return_tensors)

    return NumpyQwen2VLVideoProcessor()


_TYPES: dict[str, type] = {"device": str, "dtype": str, "fps": float, "max_frames": int, "max_pixels": int,
                           "min_pixels": int, "max_new_tokens": int, "sample_rate": int, "local_files_only": bool,
                           "attn_implementation": str, "system_prompt": str}
_BOOLS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def _factory(name: str, items: Any, options: dict[str, Any]) -> Evaluator:
    opts = {k: v for k, v in options.items() if k != "seed" and v is not None}  # greedy: no seed needed
    if unknown := sorted(set(opts) - set(_TYPES)):
        raise ValueError(f"hf: unknown option(s) {', '.join(unknown)}; known: {', '.join(sorted(_TYPES))}")
    for key, value in opts.items():
        kind = _TYPES[key]
        if isinstance(value, str) and kind is not str:
            try:
                opts[key] = _BOOLS[value.strip().lower()] if kind is bool else kind(float(value))
            except (KeyError, ValueError):
                raise ValueError(f"hf: option {key}={value!r} is not a valid {kind.__name__}") from None
    return QwenOmniEvaluator(name, **opts)


register("hf", _factory)
