"""Benchmark construction: film clip -> structured script -> generation prompts (and, beside them,
QA items, review and Label Studio I/O)."""

from mtavg.construct.agreement import Agreement, agreement, bootstrap_kappa_ci, cohen_kappa, raw_agreement
from mtavg.construct.analyse import (
    Analysis,
    AnalysisAttempt,
    ScriptAnalysisFailed,
    analyse,
    analyse_async,
    analyse_video,
)
from mtavg.construct.labelstudio import export_tasks, labeling_config, parse_export, read_export
from mtavg.construct.prompts import (
    GenerationPrompt,
    PromptTemplateError,
    analysis_prompt,
    generation_prompts,
    retry_prompt,
)
from mtavg.construct.qa import QAConfig, QAConstructionError, QAResult, build_qa, generate_qa, time_grid
from mtavg.construct.qa_bench import load_videos_meta, qa_stats, write_benchmark
from mtavg.construct.review import Assignment, ReviewError, ReviewWorkspace, assign_reviewers
from mtavg.construct.review_finalize import finalize, review_report
from mtavg.construct.script import (
    TARGET_SEGMENT_S,
    Character,
    DialogueLine,
    Script,
    ScriptInvalid,
    Segment,
    load_script,
    parse_script,
    script_json_schema,
)
from mtavg.construct.verdicts import Verdict, VerdictsInvalid, read_verdicts, write_verdicts

__all__ = [
    "TARGET_SEGMENT_S", "Analysis", "AnalysisAttempt", "Character", "DialogueLine", "GenerationPrompt",
    "PromptTemplateError", "Script", "ScriptAnalysisFailed", "ScriptInvalid", "Segment", "analyse",
    "analyse_async", "analyse_video", "analysis_prompt", "generation_prompts", "load_script", "parse_script",
    "retry_prompt", "script_json_schema",
    # QA generation, review, Label Studio
    "Agreement", "Assignment", "QAConfig", "QAConstructionError", "QAResult", "ReviewError", "ReviewWorkspace",
    "Verdict", "VerdictsInvalid", "agreement", "assign_reviewers", "bootstrap_kappa_ci", "build_qa", "cohen_kappa",
    "export_tasks", "finalize", "generate_qa", "labeling_config", "load_videos_meta", "parse_export", "qa_stats",
    "raw_agreement", "read_export", "read_verdicts", "review_report", "time_grid", "write_benchmark",
    "write_verdicts",
]
