"""The on-disk cache of derived media, keyed by the clip's content hash (+ the derivation's parameters).

Every entry appears atomically (written under a temporary name in the same directory, then renamed), so
readers in any process see a whole entry or none; a per-key lock keeps threads of one process from
doing the same work twice. Two processes may both derive an entry; the first rename wins, and the
loser's copy is dropped -- both were identical, so nobody reads a mix.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from mtavg.media import check_file

_hash_memo: dict[tuple[str, int, int], str] = {}
_hash_lock = threading.Lock()
_key_locks: dict[str, threading.Lock] = {}


def media_cache_dir() -> Path:
    """$MTAVG_CACHE_DIR/media if set, else ~/.cache/mtavg/media; created on demand."""
    root = os.environ.get("MTAVG_CACHE_DIR")
    path = Path(root) / "media" if root else Path.home() / ".cache" / "mtavg" / "media"
    path.mkdir(parents=True, exist_ok=True)
    return path


def cache_root(cache_dir: str | Path | None) -> Path:
    """``cache_dir`` as a Path (callers pass str too), else the default media cache."""
    return Path(cache_dir) if cache_dir is not None else media_cache_dir()


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of the file; memoised by (resolved path, size, mtime_ns) so a clip is hashed once."""
    path = check_file(path, structure=False)  # any file can be hashed; only missing/empty ones fail
    st = path.stat()
    key = (str(path.resolve()), st.st_size, st.st_mtime_ns)
    with _hash_lock:
        if key in _hash_memo:
            return _hash_memo[key]
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            h.update(chunk)
    digest = h.hexdigest()
    with _hash_lock:
        _hash_memo[key] = digest
    return digest


def params_key(params: dict[str, Any]) -> str:
    """A short stable hash of derivation parameters (JSON, sorted keys)."""
    return hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()[:16]


def key_lock(target: Path) -> threading.Lock:
    with _hash_lock:
        return _key_locks.setdefault(str(target), threading.Lock())


def cached_file(target: Path, write: Callable[[Path], None]) -> Path:
    """Return ``target``, producing it with ``write(tmp)`` + os.replace if absent."""
    if target.is_file():
        return target
    with key_lock(target):
        if target.is_file():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            write(tmp)
            os.chmod(tmp, 0o644)  # mkstemp makes 0600; a shared cache should be readable
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return target


# --- arrays: one directory of raw .npy files per entry, memory-mapped on load ------------------------

_META = "meta.json"


def load_arrays(target: Path, mmap: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict] | None:
    """The arrays and metadata of a complete entry, or None. Names in ``mmap`` are mapped copy-on-write.

    Why raw .npy + mmap: a hit then costs a few opens, not a read of every frame (a zip would copy).
    """
    meta_path = target / _META
    if not meta_path.is_file():  # meta.json is written last inside the entry, renamed in with it
        return None
    try:
        meta = json.loads(meta_path.read_text())
        arrays = {name: np.load(target / f"{name}.npy", mmap_mode="c" if name in mmap else None)
                  for name in meta["arrays"]}
    except (OSError, ValueError, KeyError):
        return None  # damaged (a disk filled up?): derive again
    return arrays, meta


def store_arrays(target: Path, arrays: dict[str, np.ndarray], meta: dict) -> None:
    """Write an entry atomically: build it in a temp dir beside ``target``, then rename the dir."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        for name, arr in arrays.items():
            np.save(tmp / f"{name}.npy", np.ascontiguousarray(arr), allow_pickle=False)
        (tmp / _META).write_text(json.dumps({**meta, "arrays": sorted(arrays)}))
        os.chmod(tmp, 0o755)  # mkdtemp makes 0700; a shared cache should be readable
        try:
            os.replace(tmp, target)
        except OSError:  # another process renamed its (identical) entry in first: keep theirs
            if not (target / _META).is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cached_arrays(target: Path, make: Callable[[], tuple[dict[str, np.ndarray], dict]],
                  mmap: tuple[str, ...] = ()) -> tuple[dict[str, np.ndarray], dict]:
    """Load the entry at ``target``, or ``make()`` it, store it and return what was made."""
    hit = load_arrays(target, mmap)
    if hit is not None:
        return hit
    with key_lock(target):
        hit = load_arrays(target, mmap)
        if hit is not None:
            return hit
        if target.exists():  # a damaged entry: move it aside before writing a new one
            shutil.rmtree(target, ignore_errors=True)
        arrays, meta = make()
        store_arrays(target, arrays, meta)
        return arrays, meta
