"""Tiny random stand-ins with the real models' file formats and I/O shapes, built offline.

For tests and smoke runs of the plugins without the real weights: each writes what the plugin loads
(a SyncNet state dict, a transformers CLAP directory, ImageBind / Synchformer ONNX exports) under a
directory laid out like ``$MTAVG_WEIGHTS``. Scores from these are meaningless; shapes and code paths are real.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

TEXTS = ["a dog barks in the rain", "a man speaks", "music plays loud", "a tone"]


def save_syncnet(path: Path, seed: int = 0) -> Path:
    """The full SyncNet ``S`` architecture with random weights, saved as a state dict (syncnet_v2.model)."""
    import torch

    from mtavg.metrics.models.syncnet import build_model

    torch.manual_seed(seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_model().state_dict(), path)
    return path


def text_tokenizer(path: Path) -> Any:
    """A byte-level BPE tokenizer (RoBERTa style, ~300 tokens) trained on a few captions."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(TEXTS * 5, vocab_size=300, min_frequency=1,
                            special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
    path.mkdir(parents=True, exist_ok=True)
    bpe.save_model(str(path))
    return RobertaTokenizerFast(str(path / "vocab.json"), str(path / "merges.txt"), model_max_length=64)


def save_clap(path: Path, seed: int = 0) -> Path:
    """A tiny ClapModel + ClapProcessor (1 s windows at 48 kHz, 16 mel bins) saved with save_pretrained."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    tok = text_tokenizer(path / "bpe")
    fe = ClapFeatureExtractor(feature_size=16, sampling_rate=48000, hop_length=480, max_length_s=1,
                              fft_window_size=1024, truncation="rand_trunc", padding="repeatpad")
    torch.manual_seed(seed)
    model = ClapModel(ClapConfig(
        text_config={"vocab_size": len(tok), "hidden_size": 32, "num_hidden_layers": 2,
                     "num_attention_heads": 2, "intermediate_size": 37, "max_position_embeddings": 80},
        audio_config={"num_mel_bins": 16, "spec_size": 64, "window_size": 4, "patch_size": 2,
                      "patch_stride": 2, "patch_embeds_hidden_size": 16, "hidden_size": 32, "depths": [1, 1],
                      "num_attention_heads": [2, 2], "enable_fusion": False},
        projection_dim=16))
    model.save_pretrained(path)
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(path)
    return path


def imagebind_module(dim: int = 8, seed: int = 0) -> Any:
    """ImageBind's interface: ``{modality: x} -> {modality: (B, D)}``; inputs with >= 5 dims are (B, S, ...)
    clips whose unit embeddings are averaged, as ImageBindModel.forward reduces them."""
    import torch

    class TinyImageBind(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.vision, self.audio = torch.nn.Linear(6, dim), torch.nn.Linear(128, dim)
            self.text = torch.nn.Embedding(400, dim)

        def clip_embed(self, key: str, x: torch.Tensor) -> torch.Tensor:
            if key == "vision":  # (N, 3, 2, 224, 224)
                f = self.vision(x.mean(dim=(-1, -2)).flatten(1))
            elif key == "audio":  # (N, 1, 128, 204)
                f = self.audio(x.mean(dim=-1).flatten(1))
            else:  # (N, 77)
                f = self.text(x).mean(1)
            return torch.nn.functional.normalize(f, dim=-1)

        def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
            out = {}
            for key, x in inputs.items():
                if x.ndim >= 5:
                    b, s = x.shape[:2]
                    out[key] = self.clip_embed(key, x.flatten(0, 1)).reshape(b, s, -1).mean(1)
                else:
                    out[key] = self.clip_embed(key, x)
            return out

    torch.manual_seed(seed)
    return TinyImageBind().eval()


def export_imagebind_onnx(model: Any, root: Path, tokenizer: Any) -> Path:
    """vision/audio/text.onnx + tokenizer/, with the export wrapper of imagebind.py's docstring."""
    import torch

    class One(torch.nn.Module):
        def __init__(self, key: str) -> None:
            super().__init__()
            self.m, self.key = model, key

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.m({self.key: x if self.key == "text" else x[:, None]})[self.key]

    root.mkdir(parents=True, exist_ok=True)
    for key, x in {"vision": torch.randn(2, 3, 2, 224, 224), "audio": torch.randn(2, 1, 128, 204),
                   "text": torch.randint(0, 300, (2, 77))}.items():
        _export(One(key), (x,), root / f"{key}.onnx", input_names=["x"], output_names=["emb"],
                dynamic_axes={"x": {0: "n"}, "emb": {0: "n"}})
    tokenizer.save_pretrained(root / "tokenizer")
    return root


def synchformer_module(seed: int = 0) -> Any:
    """(B, 14, 16, 3, 224, 224), (B, 14, 1, 128, 66) -> (B, 21) logits from per-segment means."""
    import torch

    class TinySynchformer(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(14 * 3 + 14 * 128, 21)

        def forward(self, video: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
            v = video.mean(dim=(2, 4, 5)).flatten(1)
            a = audio.mean(dim=(2, 4)).flatten(1)
            return self.head(torch.cat([v, a], 1))

    torch.manual_seed(seed)
    return TinySynchformer().eval()


def export_synchformer_onnx(model: Any, path: Path) -> Path:
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    _export(model, (torch.randn(1, 14, 16, 3, 224, 224), torch.randn(1, 14, 1, 128, 66)), path,
            input_names=["video", "audio"], output_names=["logits"],
            dynamic_axes={"video": {0: "b"}, "audio": {0: "b"}, "logits": {0: "b"}})
    return path


def _export(model: Any, args: tuple, path: Path, **kwargs: Any) -> None:
    """TorchScript-based export: it needs only ``onnx`` (the dynamo exporter wants onnxscript too)."""
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, args, str(path), opset_version=17, dynamo=False, **kwargs)
