"""Caldera in this process: compress, evaluate, export and tokenize models with the
C++ library (no coordinator or worker to start).

    import caldera_local as cl
    r = cl.compress("models/stories260K", "out/260k",
                    calibration="models/stories260K/calibration.safetensors",
                    rank=8, q_bits=2)
    print(r.bits_per_param, r.matrices[0].weighted_relative_error)
    print(cl.eval("out/260k", "models/stories260K/eval.safetensors").perplexity)

docs/python.md has every function and option.
"""
from caldera_local._common import JobState, ProgressDisplay, ProgressEvent
from caldera_local.api import compress, decode, eval, export, prepare_calibration, tokenize
from caldera_local.errors import (
    CalderaError,
    InvalidJobError,
    JobCancelledError,
    JobFailedError,
    JobNotFoundError,
    JobStateError,
    PermissionDenied,
    UnavailableError,
)
from caldera_local.results import (
    CompressResult,
    EvalResult,
    ExportResult,
    FinetuneBlock,
    MatrixResult,
    Perplexity,
    TokenizeResult,
)

__all__ = [
    "compress", "eval", "export", "tokenize", "decode", "prepare_calibration",
    "CompressResult", "EvalResult", "ExportResult", "FinetuneBlock", "MatrixResult", "Perplexity",
    "TokenizeResult", "JobState", "ProgressEvent", "ProgressDisplay",
    "CalderaError", "InvalidJobError", "JobCancelledError", "JobFailedError",
    "JobNotFoundError", "JobStateError", "PermissionDenied", "UnavailableError",
]
