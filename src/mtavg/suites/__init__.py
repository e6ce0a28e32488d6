"""Suite-specific formulas: AVGen-Bench prompt suites, module records and its published total."""

from mtavg.suites.avgen import (
    GROUPS,
    NORMALISE,
    WEIGHTS,
    AggregationError,
    SuiteTotal,
    TableRow,
    aggregate,
    aggregate_table,
    read_table,
)
from mtavg.suites.avgen_prompts import CATEGORIES, PromptsInvalid, clip_stem, load_prompts, match_clips
from mtavg.suites.avgen_records import MODULES, ModuleRecord, RecordsInvalid, read_records, write_records

__all__ = [
    "CATEGORIES", "GROUPS", "MODULES", "NORMALISE", "WEIGHTS", "AggregationError", "ModuleRecord",
    "PromptsInvalid", "RecordsInvalid", "SuiteTotal", "TableRow", "aggregate", "aggregate_table",
    "clip_stem", "load_prompts", "match_clips", "read_records", "read_table", "write_records",
]
