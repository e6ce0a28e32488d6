"""A tiny, randomly initialised Qwen2.5-Omni thinker + processor, built offline.

Tests of the ``hf`` backend need a directory that ``from_pretrained`` loads exactly like the real
``Qwen/Qwen2.5-Omni-7B`` (same classes, same special tokens, same chat template, same audio/video
processors) but that takes seconds to build and run and needs no download. Weights are random, so the
model's answers are gibberish; only the plumbing is real.

Needs the ``[hf]`` extra (torch, transformers); imported lazily by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

#: Qwen2.5-Omni's added tokens, in the real tokenizer's order (ids differ: this vocab is tiny).
SPECIAL_TOKENS: tuple[str, ...] = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|AUDIO|>", "<|audio_bos|>", "<|audio_eos|>",
    "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_bos|>", "<|vision_eos|>", "<|vision_pad|>",
    "<|IMAGE|>", "<|VIDEO|>",
)
#: Named special tokens the processor reads from the tokenizer (``tokenizer.video_token`` etc.).
NAMED_TOKENS: dict[str, str] = {
    "image_token": "<|IMAGE|>", "audio_token": "<|AUDIO|>", "video_token": "<|VIDEO|>",
    "vision_bos_token": "<|vision_bos|>", "vision_eos_token": "<|vision_eos|>",
    "audio_bos_token": "<|audio_bos|>", "audio_eos_token": "<|audio_eos|>",
}
#: Whole words that get one token each, so "Yes"/"No" scoring and the chat roles look like the real vocab.
WORDS: tuple[str, ...] = ("Yes", "No", "yes", "no", "YES", "NO", "user", "system", "assistant", "answer")

# The Qwen2.5-Omni chat template (system prompt, <|vision_bos|><|VIDEO|><|vision_eos|> per video,
# <|audio_bos|><|AUDIO|><|audio_eos|> per audio), trimmed of tool use.
CHAT_TEMPLATE = (
    "{% set audio_count = namespace(value=0) %}{% set image_count = namespace(value=0) %}"
    "{% set video_count = namespace(value=0) %}"
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\n"
    "You are a helpful assistant.<|im_end|>\n{% endif %}"
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content or 'image_url' in content %}"
    "{% set image_count.value = image_count.value + 1 %}"
    "{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}<|vision_bos|><|IMAGE|><|vision_eos|>"
    "{% elif content['type'] == 'audio' or 'audio' in content or 'audio_url' in content %}"
    "{% set audio_count.value = audio_count.value + 1 %}"
    "{% if add_audio_id %}Audio {{ audio_count.value }}: {% endif %}<|audio_bos|><|AUDIO|><|audio_eos|>"
    "{% elif content['type'] == 'video' or 'video' in content %}"
    "{% set video_count.value = video_count.value + 1 %}"
    "{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}<|vision_bos|><|VIDEO|><|vision_eos|>"
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    "{% endfor %}<|im_end|>\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map (the alphabet of every byte-level BPE, Qwen's too)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + \
        list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs), strict=True))


def _vocab_and_merges() -> tuple[dict[str, int], list[tuple[str, str]]]:
    """256 byte symbols, then each word of WORDS (bare and with a leading space, 'Ġ') by chained merges."""
    vocab = {ch: i for i, ch in enumerate(_bytes_to_unicode().values())}
    merges: list[tuple[str, str]] = []

    def add(left: str, right: str) -> None:
        if left + right not in vocab:
            merges.append((left, right))
            vocab[left + right] = len(vocab)

    for word in WORDS:
        for k in range(2, len(word) + 1):  # Y+e -> Ye, Ye+s -> Yes: every prefix is a token
            add(word[:k - 1], word[k - 1])
        add("Ġ", word)  # " Yes" -> one token, as in the real vocab
    return vocab, merges


def build_tokenizer() -> Any:
    """A byte-level BPE Qwen2 tokenizer with Qwen2.5-Omni's special tokens; any text tokenizes."""
    import transformers

    vocab, merges = _vocab_and_merges()
    common: dict[str, Any] = dict(
        unk_token=None, bos_token=None, eos_token="<|im_end|>", pad_token="<|endoftext|>",
        extra_special_tokens=dict(NAMED_TOKENS), model_max_length=32768,
    )
    if int(transformers.__version__.split(".")[0]) >= 5:  # Qwen2Tokenizer builds BPE from vocab + merges
        tok = transformers.Qwen2Tokenizer(vocab=vocab, merges=merges, **common)
    else:  # pragma: no cover - transformers 4.x: build the backend with `tokenizers`
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers

        backend = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        backend.decoder = decoders.ByteLevel()
        tok = transformers.PreTrainedTokenizerFast(tokenizer_object=backend, **common)
    # special=True: never split, skipped by decode(skip_special_tokens=True)
    tok.add_tokens(list(SPECIAL_TOKENS), special_tokens=True)
    return tok


def build_tiny_qwen_omni(out_dir: Path, *, seed: int = 0, full_release: bool = False) -> Path:
    """Write a loadable tiny Qwen2.5-Omni thinker (config, weights, processor files) into ``out_dir``.

    ``full_release=True`` lays it out like the ``Qwen/Qwen2.5-Omni-7B`` release instead: a
    ``qwen2_5_omni`` config with ``enable_audio_output`` on, weights under ``thinker.``, a
    ``spk_dict.pt``; only the talker's weights are left out (loaders must not build it).
    """
    import torch
    from transformers import (
        GenerationConfig,
        Qwen2_5OmniConfig,
        Qwen2_5OmniForConditionalGeneration,
        Qwen2_5OmniThinkerConfig,
        Qwen2_5OmniThinkerForConditionalGeneration,
        WhisperFeatureExtractor,
    )

    from mtavg.evaluators.hf_backend import numpy_video_processor, omni_processor

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tok = build_tokenizer()
    ids = {t: tok.convert_tokens_to_ids(t) for t in SPECIAL_TOKENS}
    hidden = 64
    config = Qwen2_5OmniThinkerConfig(
        # patch geometry and mel bins stay real (14 px patches, 2 frames per patch, 2x2 merge, 128 mels)
        # so the stock image/video processors and Whisper feature extractor fit unchanged
        vision_config=dict(
            depth=2, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=hidden,
            patch_size=14, temporal_patch_size=2, spatial_merge_size=2, window_size=112,
            fullatt_block_indexes=[1],
        ),
        audio_config=dict(
            num_mel_bins=128, encoder_layers=2, encoder_attention_heads=2, encoder_ffn_dim=64, d_model=32,
            output_dim=hidden, max_source_positions=1500, n_window=100,
        ),
        text_config=dict(
            vocab_size=len(tok), hidden_size=hidden, intermediate_size=128, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32768,
            # head_dim 16 -> 8 rotary frequencies split over (time, height, width)
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0, "mrope_section": [2, 3, 3]},
            pad_token_id=ids["<|endoftext|>"], eos_token_id=ids["<|im_end|>"], tie_word_embeddings=False,
        ),
        audio_token_index=ids["<|AUDIO|>"], image_token_index=ids["<|IMAGE|>"],
        video_token_index=ids["<|VIDEO|>"], audio_start_token_id=ids["<|audio_bos|>"],
        audio_end_token_id=ids["<|audio_eos|>"], vision_start_token_id=ids["<|vision_bos|>"],
        vision_end_token_id=ids["<|vision_eos|>"], user_token_id=tok.convert_tokens_to_ids("user"),
        pad_token_id=ids["<|endoftext|>"], tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    if full_release:  # the default (full-size) talker config is only a config: it is never built
        full = Qwen2_5OmniConfig(thinker_config=config.to_dict(), enable_audio_output=False)
        model = Qwen2_5OmniForConditionalGeneration(full).eval()
    else:
        model = Qwen2_5OmniThinkerForConditionalGeneration(config).eval()
    model.generation_config = GenerationConfig(
        eos_token_id=[ids["<|im_end|>"], ids["<|endoftext|>"]], pad_token_id=ids["<|endoftext|>"],
        do_sample=False,
    )
    model.save_pretrained(out_dir)
    if full_release:
        saved = json.loads((out_dir / "config.json").read_text())
        (out_dir / "config.json").write_text(json.dumps({**saved, "enable_audio_output": True}, indent=2))
        torch.save({}, out_dir / "spk_dict.pt")

    pixels = {"shortest_edge": 56 * 56, "longest_edge": 28 * 28 * 1280}
    geometry = {"patch_size": 14, "temporal_patch_size": 2, "merge_size": 2}
    processor = omni_processor(
        image_processor=_image_processor(pixels, geometry),
        # the torchvision-free video processor: the stock one cannot even be built without torchvision
        video_processor=numpy_video_processor({"size": pixels, **geometry}),
        feature_extractor=WhisperFeatureExtractor(feature_size=128, sampling_rate=16000),
        tokenizer=tok,
        chat_template=CHAT_TEMPLATE,
    )
    processor.save_pretrained(out_dir)
    _write_stock_video_config(out_dir, pixels, geometry)
    return out_dir


def _image_processor(pixels: dict[str, int], geometry: dict[str, int]) -> Any:
    try:  # transformers >= 5: the PIL backend needs no torchvision
        from transformers import Qwen2VLImageProcessorPil as ImageProcessor
    except ImportError:  # pragma: no cover
        from transformers import Qwen2VLImageProcessor as ImageProcessor
    return ImageProcessor(size=pixels, **geometry)


def _write_stock_video_config(out_dir: Path, pixels: dict[str, int], geometry: dict[str, int]) -> None:
    """Record the video processor as the stock Qwen2VLVideoProcessor, as the real checkpoint does, so
    a machine with torchvision loads the stock class and one without falls back to the numpy port."""
    from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

    stock = {
        "video_processor_type": "Qwen2VLVideoProcessor", "processor_class": "Qwen2_5OmniProcessor",
        "size": pixels, "min_pixels": pixels["shortest_edge"], "max_pixels": pixels["longest_edge"],
        **geometry, "do_resize": True, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": list(OPENAI_CLIP_MEAN), "image_std": list(OPENAI_CLIP_STD), "do_convert_rgb": True,
        "do_sample_frames": False,
    }
    path = out_dir / "processor_config.json"
    data = json.loads(path.read_text()) if path.is_file() else {}
    if "video_processor" in data:  # transformers >= 5 nests every part in processor_config.json
        data["video_processor"] = stock
        path.write_text(json.dumps(data, indent=2))
    else:
        (out_dir / "video_preprocessor_config.json").write_text(json.dumps(stock, indent=2))
