"""Find a benchmark (local directory or Hugging Face dataset id) and load it into typed records."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from mtavg.bench.schema import QAItem, Video
from mtavg.bench.validate import QA_FILES, VIDEOS_FILE, Problem, qa_file_of, scan_benchmark
from mtavg.taxonomy import Taxonomy, TaxonomyError, taxonomy_for_bench

# "org/name" as the Hub spells repo ids; "hf://datasets/org/name" is accepted too.
_HF_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[A-Za-z0-9][\w.\-]*$")
_HF_PREFIX = "hf://datasets/"
_TRUE = ("1", "true", "yes", "on")


class BenchmarkNotFound(FileNotFoundError):
    """The source is neither a benchmark directory nor a (cached or downloadable) HF dataset."""


class BenchmarkInvalid(ValueError):
    """The benchmark was found but breaks the contract; ``problems`` lists every defect."""

    def __init__(self, problems: list[Problem], root: Path | None = None) -> None:
        self.problems = list(problems)
        self.root = root
        where = f"{root}: " if root else ""
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{where}{len(self.problems)} problem(s) in benchmark:\n{lines}")


@dataclass
class Benchmark:
    root: Path
    name: str
    videos: dict[str, Video]
    items: list[QAItem]
    # The taxonomy the benchmark declares (bench.json / taxonomy.json); None = the default (MTAVG-Bench 2.0).
    taxonomy: Taxonomy | None = None
    _by_qid: dict[str, QAItem] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._by_qid = {it.qid: it for it in self.items}

    def __len__(self) -> int:
        return len(self.items)

    def __iter__(self) -> Iterator[QAItem]:
        return iter(self.items)

    def video_path(self, video_id: str) -> Path:
        """Absolute path of a clip's media file."""
        try:
            return self.root / self.videos[video_id].path
        except KeyError:
            raise KeyError(f"unknown video_id {video_id!r} in benchmark {self.name}") from None

    def item(self, qid: str) -> QAItem:
        try:
            return self._by_qid[qid]
        except KeyError:
            raise KeyError(f"unknown qid {qid!r} in benchmark {self.name}") from None


def _is_bench_dir(path: Path) -> bool:
    return path.is_dir() and (path / VIDEOS_FILE).is_file() and qa_file_of(path) is not None


def _hf_cache_dir() -> str | None:
    # huggingface_hub reads these once at import; reading them here honours later changes (tests, notebooks).
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def resolve_benchmark(source: str | Path) -> Path:
    """Directory holding the benchmark: a local path, else a Hugging Face dataset (cache first)."""
    text = str(source)
    path = Path(source).expanduser()
    if _is_bench_dir(path):
        return path
    tried: list[str] = []
    if path.is_dir():
        tried.append(f"local directory {path} holds no {VIDEOS_FILE} + {' or '.join(QA_FILES)}")
    elif path.exists():
        tried.append(f"{path} is a file; give the benchmark directory that holds it")
    else:
        tried.append(f"local path {path} does not exist")

    repo_id = text[len(_HF_PREFIX):] if text.startswith(_HF_PREFIX) else text
    if isinstance(source, str) and _HF_ID.match(repo_id):
        found = _resolve_hf(repo_id, tried)
        if found is not None:
            return found
        tried.append(f"to fetch it: huggingface-cli download --repo-type dataset {repo_id} "
                     f"(or `hf download {repo_id} --repo-type dataset`), then retry")
    else:
        tried.append(f"{text!r} is not a Hugging Face dataset id (org/name) either")
    raise BenchmarkNotFound(f"benchmark {text!r} not found:\n" + "\n".join(f"  - {t}" for t in tried))


def _resolve_hf(repo_id: str, tried: list[str]) -> Path | None:
    try:
        from huggingface_hub import snapshot_download  # lazy: an optional extra
    except ImportError:
        tried.append("huggingface_hub is not installed (pip install 'mtavg-bench[hf]'), "
                     "so Hugging Face dataset ids cannot be resolved")
        return None
    cache_dir = _hf_cache_dir()
    attempts = [True] if _offline() else [True, False]  # cache first, then the network if allowed
    for local_only in attempts:
        try:
            snap = Path(snapshot_download(repo_id, repo_type="dataset", local_files_only=local_only,
                                          cache_dir=cache_dir))
        except Exception as e:  # offline, missing, gated, bad id...: report and try the next way
            if local_only:  # the library's own text here only talks about its flags
                tried.append(f"dataset {repo_id} is not in the local HF cache ({cache_dir or 'default location'})")
            else:
                reason = str(e).splitlines()[0] if str(e) else type(e).__name__
                tried.append(f"dataset {repo_id} could not be fetched from the Hugging Face Hub: {reason}")
            continue
        if _is_bench_dir(snap):
            return snap
        tried.append(f"dataset {repo_id} at {snap} holds no {VIDEOS_FILE} + {' or '.join(QA_FILES)}")
        return None
    if _offline():
        tried.append("HF_HUB_OFFLINE is set, so the Hub was not contacted (unset it to download)")
    return None


def load_benchmark(source: str | Path, *, validate: bool = True) -> Benchmark:
    """Load a benchmark; raise BenchmarkInvalid listing every problem.

    ``validate=False`` skips the semantic checks (taxonomy, answers, media files on disk — handy
    before the media is downloaded); rows that cannot be read or typed still raise, never get dropped.
    """
    root = resolve_benchmark(source)
    scan = scan_benchmark(root, semantic=validate)
    if scan.problems:
        raise BenchmarkInvalid(scan.problems, root)
    text = str(source)
    # A local directory is named by its folder, an HF dataset by its id.
    if root == Path(source).expanduser():
        name = root.resolve().name
    else:
        name = text[len(_HF_PREFIX):] if text.startswith(_HF_PREFIX) else text
    taxonomy = scan.taxonomy
    if taxonomy is None:  # validate=False: reading needs no taxonomy, so a broken declaration waits for scoring
        try:
            taxonomy = taxonomy_for_bench(root)
        except TaxonomyError:
            taxonomy = None
    return Benchmark(root=root, name=name, videos=scan.videos, items=scan.items, taxonomy=taxonomy)


def save_qa_parquet(items: Iterable[QAItem], path: str | Path) -> Path:
    """Write items as qa.parquet; nested fields as JSON text so they round-trip exactly (nulls included)."""
    import pyarrow as pa  # lazy: optional extra
    import pyarrow.parquet as pq

    nested = ("options", "video_ids", "answer", "time_options", "time_answer", "meta")
    rows = []
    for it in items:
        rec = it.model_dump(mode="json")
        rows.append({k: (json.dumps(v, ensure_ascii=False) if k in nested and v is not None else v)
                     for k, v in rec.items()})
    path = Path(path)
    pq.write_table(pa.Table.from_pylist(rows), path)
    return path


def save_jsonl(records: Iterable[Video | QAItem], path: str | Path) -> Path:
    """Write videos.jsonl / qa.jsonl, leaving out unset optional fields."""
    path = Path(path)
    with path.open("w", encoding="utf-8") as fh:
        for rec in records:
            fh.write(json.dumps(rec.model_dump(mode="json", exclude_none=True), ensure_ascii=False) + "\n")
    return path
