"""Interoperation with other evaluation harnesses (lmms-eval)."""

from mtavg.interop.lmms_eval import (
    ExportedTask,
    LmmsEvalSamplesError,
    export_lmms_eval,
    import_lmms_eval_samples,
)

__all__ = ["ExportedTask", "LmmsEvalSamplesError", "export_lmms_eval", "import_lmms_eval_samples"]
