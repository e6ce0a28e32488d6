"""The MTAVG-Bench 2.0 failure taxonomy: 3 categories -> 10 sub-dimensions -> 45 failure modes.

The data lives in ``taxonomy.json`` beside this file; this module gives typed, cached access.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources


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

    def category_of(self, sub_dimension: str) -> str:
        return self.sub_dimensions[sub_dimension].category

    def to_dict(self) -> dict:
        return {
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
            ]
        }


@lru_cache(maxsize=1)
def load_taxonomy() -> Taxonomy:
    raw = json.loads(resources.files(__package__).joinpath("taxonomy.json").read_text(encoding="utf-8"))
    categories: dict[str, Category] = {}
    subs: dict[str, SubDimension] = {}
    modes: dict[str, FailureMode] = {}
    for c in raw["categories"]:
        for sd in c["sub_dimensions"]:
            for m in sd["failure_modes"]:
                modes[m["slug"]] = FailureMode(m["slug"], m["name"], m["description"], sd["code"], c["slug"])
            subs[sd["code"]] = SubDimension(
                sd["code"], sd["name"], c["slug"], tuple(m["slug"] for m in sd["failure_modes"])
            )
        categories[c["slug"]] = Category(c["slug"], c["name"], tuple(sd["code"] for sd in c["sub_dimensions"]))
    return Taxonomy(categories, subs, modes)


SUB_DIMENSIONS: tuple[str, ...] = tuple(load_taxonomy().sub_dimensions)
CATEGORIES: tuple[str, ...] = tuple(load_taxonomy().categories)
