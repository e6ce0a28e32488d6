"""Failure taxonomies: categories (a paper may call them levels) -> sub-dimensions -> failure modes.

Two taxonomies ship: ``mtavg-v2`` (MTAVG-Bench 2.0, 3 categories -> 10 sub-dimensions -> 45 failure
modes), the default, and ``avbench`` (the yes/no dimensions of AVBench-style pair datasets, whose failure
modes are the perturbation types; ``mtavg perturb build`` writes benchmarks that declare it). Any other taxonomy is a JSON file of the same shape, loaded by path; a benchmark
directory declares its own (``taxonomy.json`` at its root, or ``bench.json`` naming one), and
:func:`taxonomy_for_bench` finds it. docs/taxonomies.md explains how to add one.

``load_taxonomy()`` with no argument returns the *active* taxonomy: the default, or the one set by
``with use_taxonomy(...)`` — so scoring and report code that calls ``load_taxonomy()`` follows the
benchmark being scored without every function taking a taxonomy argument.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

DEFAULT_TAXONOMY = "mtavg-v2"
#: shipped taxonomies: name -> JSON file beside this module
SHIPPED: dict[str, str] = {"mtavg-v2": "taxonomy.json", "avbench": "avbench.json"}
#: files at a benchmark's root that select its taxonomy (see taxonomy_for_bench)
BENCH_META_FILE, BENCH_TAXONOMY_FILE = "bench.json", "taxonomy.json"


class TaxonomyError(ValueError):
    """A taxonomy (or a benchmark's taxonomy declaration) is unreadable or malformed.

    ``file`` is the offending file; ``problems`` lists every defect as ``field: message``.
    """

    def __init__(self, file: str | None, problems: list[str]) -> None:
        self.file, self.problems = file, list(problems)
        where = f"{file}: " if file else ""
        super().__init__(where + ("; ".join(self.problems) if len(self.problems) < 2
                                  else f"{len(self.problems)} problems:\n" + "\n".join(f"  {p}" for p in problems)))


class UnknownTaxonomy(TaxonomyError):
    """Neither a shipped taxonomy name nor an existing file."""


@dataclass(frozen=True)
class FailureMode:
    slug: str
    name: str
    description: str
    sub_dimension: str  # code, e.g. "EP"
    category: str  # slug, e.g. "acting"


@dataclass(frozen=True)
class SubDimension:
    code: str
    name: str
    category: str
    failure_modes: tuple[str, ...]  # slugs, in taxonomy order


@dataclass(frozen=True)
class Category:
    slug: str
    name: str
    sub_dimensions: tuple[str, ...]  # codes, in taxonomy order


@dataclass(frozen=True)
class Taxonomy:
    categories: dict[str, Category]
    sub_dimensions: dict[str, SubDimension]
    failure_modes: dict[str, FailureMode]
    name: str = DEFAULT_TAXONOMY
    version: str | None = None
    group_label: str = "category"  # what the top level is called in tables ("level" for MTAVG-Bench v1)
    source: str | None = field(default=None, compare=False)  # the file it was read from

    def category_of(self, sub_dimension: str) -> str:
        return self.sub_dimensions[sub_dimension].category

    def to_dict(self) -> dict:
        """The JSON shape :func:`taxonomy_from_dict` reads (round-trips)."""
        return {
            "name": self.name,
            "version": self.version,
            "group_label": self.group_label,
            "categories": [
                {
                    "slug": c.slug,
                    "name": c.name,
                    "sub_dimensions": [
                        {
                            "code": code,
                            "name": self.sub_dimensions[code].name,
                            "failure_modes": [
                                {"slug": s, "name": self.failure_modes[s].name,
                                 "description": self.failure_modes[s].description}
                                for s in self.sub_dimensions[code].failure_modes
                            ],
                        }
                        for code in c.sub_dimensions
                    ],
                }
                for c in self.categories.values()
            ],
        }


# ---------------------------------------------------------------- parsing
def _join(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _text(obj: dict, key: str, where: str, problems: list[str], *, token: bool = False) -> str:
    """A required non-empty string field; ``token`` fields (slugs, codes) may not contain whitespace."""
    value = obj.get(key)
    if not isinstance(value, str) or not value.strip():
        problems.append(f"{_join(where, key)}: missing or empty (need a non-empty string)")
        return ""
    if token and any(ch.isspace() for ch in value):
        problems.append(f"{_join(where, key)}: {value!r} contains whitespace")
    return value


def _objects(obj: dict, key: str, where: str, problems: list[str]) -> list[tuple[str, dict]]:
    """(where, object) for each entry of a required non-empty list of objects."""
    value = obj.get(key)
    if not isinstance(value, list) or not value:
        problems.append(f"{_join(where, key)}: missing or empty (need a non-empty list)")
        return []
    out = []
    for i, v in enumerate(value):
        if isinstance(v, dict):
            out.append((f"{_join(where, key)}[{i}]", v))
        else:
            problems.append(f"{_join(where, key)}[{i}]: expected a JSON object, got {type(v).__name__}")
    return out


def taxonomy_from_dict(raw: Any, *, name: str | None = None, source: str | None = None) -> Taxonomy:
    """Build and check a taxonomy; every defect (missing field, duplicate code or slug) is reported at once.

    ``name`` is used when the JSON has no ``name`` of its own.
    """
    problems: list[str] = []
    if not isinstance(raw, dict):
        raise TaxonomyError(source, [f"top level: expected a JSON object, got {type(raw).__name__}"])
    categories: dict[str, Category] = {}
    subs: dict[str, SubDimension] = {}
    modes: dict[str, FailureMode] = {}
    first_seen: dict[tuple[str, str], str] = {}  # (kind, key) -> where it was first defined

    def unique(kind: str, key: str, where: str) -> bool:
        if not key:
            return False
        if (kind, key) in first_seen:
            problems.append(f"{where}: duplicate {kind} {key!r} (first at {first_seen[(kind, key)]})")
            return False
        first_seen[(kind, key)] = where
        return True

    for cw, c in _objects(raw, "categories", "", problems):
        slug, cname = _text(c, "slug", cw, problems, token=True), _text(c, "name", cw, problems)
        codes: list[str] = []
        for sw, sd in _objects(c, "sub_dimensions", cw, problems):
            code, sname = _text(sd, "code", sw, problems, token=True), _text(sd, "name", sw, problems)
            slugs: list[str] = []
            for mw, m in _objects(sd, "failure_modes", sw, problems):
                mslug = _text(m, "slug", mw, problems, token=True)
                mname, desc = _text(m, "name", mw, problems), _text(m, "description", mw, problems)
                if unique("failure mode", mslug, f"{mw}.slug"):
                    modes[mslug] = FailureMode(mslug, mname, desc, code, slug)
                    slugs.append(mslug)
            if unique("sub-dimension code", code, f"{sw}.code"):
                subs[code] = SubDimension(code, sname, slug, tuple(slugs))
                codes.append(code)
        if unique("category", slug, f"{cw}.slug"):
            categories[slug] = Category(slug, cname, tuple(codes))
    meta = {k: raw.get(k) for k in ("name", "version", "group_label")}
    for k, v in meta.items():
        if v is not None and (not isinstance(v, str) or not v.strip()):
            problems.append(f"{k}: expected a non-empty string, got {v!r}")
    if problems:
        raise TaxonomyError(source, problems)
    return Taxonomy(categories, subs, modes, name=meta["name"] or name or "unnamed", version=meta["version"],
                    group_label=meta["group_label"] or "category", source=source)


def read_taxonomy_file(path: str | Path) -> Taxonomy:
    """A taxonomy JSON file, checked (no caching: see :func:`load_taxonomy` for the cached way)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as e:
        raise TaxonomyError(str(path), [f"unreadable: {e.strerror or e}"]) from None
    except json.JSONDecodeError as e:
        raise TaxonomyError(str(path), [f"invalid JSON: {e.msg} (line {e.lineno}, column {e.colno})"]) from None
    return taxonomy_from_dict(raw, name=path.stem, source=str(path))


# ---------------------------------------------------------------- loading and selection
@lru_cache(maxsize=len(SHIPPED))
def _shipped(name: str) -> Taxonomy:
    res = resources.files(__package__).joinpath(SHIPPED[name])
    raw = json.loads(res.read_text(encoding="utf-8"))
    tax = taxonomy_from_dict(raw, name=name, source=f"{__package__}/{SHIPPED[name]}")
    if tax.name != name:  # the registry key is the name users type; the file must not disagree with it
        raise TaxonomyError(tax.source, [f"name: {tax.name!r}, but it is registered as {name!r}"])
    return tax


@lru_cache(maxsize=32)
def _from_file(path: str, mtime_ns: int, size: int) -> Taxonomy:  # mtime/size in the key: edits are seen
    return read_taxonomy_file(path)


_ACTIVE: ContextVar[Taxonomy | None] = ContextVar("mtavg_active_taxonomy", default=None)


def load_taxonomy(source: Taxonomy | str | Path | None = None) -> Taxonomy:
    """A taxonomy by shipped name (``"mtavg-v2"``) or JSON file path; None = the active one (default v2)."""
    if isinstance(source, Taxonomy):
        return source
    if source is None:
        active = _ACTIVE.get()
        return active if active is not None else _shipped(DEFAULT_TAXONOMY)
    if isinstance(source, str) and source in SHIPPED:
        return _shipped(source)
    path = Path(source).expanduser()
    if path.is_file():
        st = path.stat()
        return _from_file(str(path.resolve()), st.st_mtime_ns, st.st_size)
    raise UnknownTaxonomy(str(source), [f"not a shipped taxonomy ({', '.join(SHIPPED)}) nor an existing file"])


@contextmanager
def use_taxonomy(source: Taxonomy | str | Path | None) -> Iterator[Taxonomy]:
    """Make a taxonomy the one ``load_taxonomy()`` returns inside the block (this thread / task only)."""
    tax = load_taxonomy(source)
    token = _ACTIVE.set(tax)
    try:
        yield tax
    finally:
        _ACTIVE.reset(token)


def bench_taxonomy_ref(root: str | Path) -> str | Path:
    """What a benchmark directory declares: a shipped name or a file inside it.

    ``bench.json`` ``{"taxonomy": NAME_OR_RELATIVE_PATH}`` wins; else a ``taxonomy.json`` at the root;
    else the default. A declared path is relative to the root and may not leave it (the directory is
    shipped as a whole, e.g. as a Hugging Face dataset).
    """
    root = Path(root)
    meta_path = root / BENCH_META_FILE
    if meta_path.is_file():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as e:
            raise TaxonomyError(str(meta_path), [f"invalid JSON: {e.msg} (line {e.lineno})"]) from None
        if not isinstance(meta, dict):
            raise TaxonomyError(str(meta_path), ["top level: expected a JSON object"])
        declared = meta.get("taxonomy")
        if declared is not None:
            return _declared_ref(root, meta_path, declared)
    if (root / BENCH_TAXONOMY_FILE).is_file():
        return root / BENCH_TAXONOMY_FILE
    return DEFAULT_TAXONOMY


def _declared_ref(root: Path, meta_path: Path, declared: Any) -> str | Path:
    if not isinstance(declared, str) or not declared.strip():
        raise TaxonomyError(str(meta_path), [f"taxonomy: expected a name or a relative path, got {declared!r}"])
    if declared in SHIPPED:
        return declared
    if PurePosixPath(declared).is_absolute() or PureWindowsPath(declared).is_absolute():
        raise TaxonomyError(str(meta_path), [f"taxonomy: {declared!r} is absolute; give a path inside the benchmark"])
    norm = posixpath.normpath(declared.replace("\\", "/"))
    if norm == ".." or norm.startswith("../") or not (root / norm).resolve().is_relative_to(root.resolve()):
        raise TaxonomyError(str(meta_path), [f"taxonomy: {declared!r} leaves the benchmark directory"])
    if not (root / norm).is_file():
        raise UnknownTaxonomy(str(meta_path), [f"taxonomy: {declared!r} is not a shipped taxonomy "
                                               f"({', '.join(SHIPPED)}) nor a file in the benchmark"])
    return root / norm


def taxonomy_for_bench(root: str | Path) -> Taxonomy:
    """The taxonomy a benchmark directory declares (the default when it declares none)."""
    return load_taxonomy(bench_taxonomy_ref(root))


# The default taxonomy's codes and slugs, for code that only ever deals with MTAVG-Bench 2.0.
SUB_DIMENSIONS: tuple[str, ...] = tuple(_shipped(DEFAULT_TAXONOMY).sub_dimensions)
CATEGORIES: tuple[str, ...] = tuple(_shipped(DEFAULT_TAXONOMY).categories)

__all__ = [
    "BENCH_META_FILE", "BENCH_TAXONOMY_FILE", "CATEGORIES", "DEFAULT_TAXONOMY", "SHIPPED", "SUB_DIMENSIONS",
    "Category", "FailureMode", "SubDimension", "Taxonomy", "TaxonomyError", "UnknownTaxonomy",
    "bench_taxonomy_ref", "load_taxonomy", "read_taxonomy_file", "taxonomy_for_bench", "taxonomy_from_dict",
    "use_taxonomy",
]
