"""`mtavg serve-config`: a vLLM command with the documented flags and the matching eval, as valid shell."""

from __future__ import annotations

import json
import shlex

import pytest
from typer.testing import CliRunner

from mtavg.cli import app
from mtavg.serve_config import RECIPES, UnknownServeModel, eval_command, serve_command, serve_config_text


def _flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


@pytest.mark.parametrize("model", ["Qwen/Qwen2.5-Omni-7B", "Qwen/Qwen2.5-Omni-3B",
                                   "Qwen/Qwen3-Omni-30B-A3B-Instruct"])
def test_serve_command_has_the_documented_vllm_flags(model, tmp_path):
    argv = serve_command(model, media_dir=tmp_path, port=8123)
    assert argv[:3] == ["vllm", "serve", model]
    assert _flag(argv, "--port") == "8123"
    assert int(_flag(argv, "--tensor-parallel-size")) == RECIPES[model].gpus
    assert int(_flag(argv, "--max-model-len")) == RECIPES[model].max_model_len
    limits = json.loads(_flag(argv, "--limit-mm-per-prompt"))
    assert limits == {"video": 2, "audio": 2}  # pairwise items carry two clips
    assert _flag(argv, "--allowed-local-media-path") == str(tmp_path.resolve())
    assert "--trust-remote-code" in argv
    assert "--allowed-local-media-path" not in serve_command(model)  # no shared disk: no local-file access


def test_printed_text_is_valid_shell_and_round_trips(tmp_path):
    text = serve_config_text("openai:Qwen/Qwen2.5-Omni-7B", gpus=2, media_dir=tmp_path / "media dir",
                             nodes=("gpu-a", "gpu-b"), bench="/data/my bench")
    commands = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(commands) == 2
    serve, evaluate = (shlex.split(c) for c in commands)
    assert shlex.join(serve) == commands[0] and shlex.join(evaluate) == commands[1]
    assert serve == serve_command("Qwen/Qwen2.5-Omni-7B", gpus=2, media_dir=tmp_path / "media dir")
    assert _flag(serve, "--allowed-local-media-path") == str((tmp_path / "media dir").resolve())
    assert evaluate[:2] == ["mtavg", "eval"] and _flag(evaluate, "--bench") == "/data/my bench"
    assert _flag(evaluate, "--model") == "openai:Qwen/Qwen2.5-Omni-7B"
    urls = [evaluate[i + 1] for i, a in enumerate(evaluate) if a == "--base-url"]
    assert urls == ["http://gpu-a:8000/v1", "http://gpu-b:8000/v1"]
    assert _flag(evaluate, "--option") == "transport=file"
    assert "--option" not in eval_command("Qwen/Qwen2.5-Omni-3B", ["n1"])  # base64 without a shared disk


def test_unknown_model_lists_the_supported_ones():
    with pytest.raises(UnknownServeModel, match="Qwen/Qwen2.5-Omni-7B"):
        serve_command("meta/llama")
    with pytest.raises(ValueError, match="--gpus"):
        serve_command("Qwen/Qwen2.5-Omni-7B", gpus=0)
    result = CliRunner().invoke(app, ["serve-config", "meta/llama"])
    assert result.exit_code == 2 and "supported" in result.output


def test_cli_prints_both_commands(tmp_path):
    result = CliRunner().invoke(app, ["serve-config", "Qwen/Qwen3-Omni-30B-A3B-Instruct", "--port", "9000",
                                      "--media-dir", str(tmp_path), "--node", "h1", "--node", "h2", "--node", "h3"])
    assert result.exit_code == 0, result.output
    lines = [shlex.split(x) for x in result.output.splitlines() if x.startswith(("vllm", "mtavg"))]
    assert lines[0][:3] == ["vllm", "serve", "Qwen/Qwen3-Omni-30B-A3B-Instruct"]
    assert _flag(lines[0], "--tensor-parallel-size") == "2"
    assert [a for a in lines[1] if a.startswith("http://")] == [f"http://h{i}:9000/v1" for i in (1, 2, 3)]
    assert _flag(lines[1], "--bench") == str(tmp_path.resolve())
