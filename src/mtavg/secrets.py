"""Keep secrets off disk: anything written from an error message passes through ``redact``."""

from __future__ import annotations

import os
import re

_SECRET_NAME = re.compile(r"(API_KEY|_TOKEN|_SECRET|PASSWORD)$|^(OPENAI|GEMINI|GOOGLE|ANTHROPIC|HF)_.*KEY", re.I)


def secret_values(extra_env: tuple[str, ...] = ()) -> list[str]:
    """Values of environment variables that hold secrets (by name), longest first."""
    values = {v for k, v in os.environ.items() if (_SECRET_NAME.search(k) or k in extra_env) and len(v) >= 8}
    return sorted(values, key=len, reverse=True)


def redact(text: str | None, extra_env: tuple[str, ...] = ()) -> str | None:
    if not text:
        return text
    for value in secret_values(extra_env):
        text = text.replace(value, "***")
    return re.sub(r"(?i)(bearer\s+|api[_-]?key[=:]\s*|key=)[A-Za-z0-9_\-.]{12,}", r"\1***", text)
