"""Typed results of caldera_local's operations."""
import json
from dataclasses import dataclass, field
from typing import List, Optional

from caldera_local._common import JobState


@dataclass(frozen=True)
class MatrixResult:
    """One compressed matrix, as report.json records it (docs/format/report.md):
    its errors, stored bits and, with target_bits, the setting chosen for it."""

    name: str  # "model.layers.0.self_attn.q_proj"
    layer: int
    module: str  # "q_proj"
    rows: int
    cols: int
    rank: int
    relative_error: float
    weighted_relative_error: float
    bits_per_param: float
    storage_bits: int
    seconds: float
    setting: str = ""  # "caldera r8 e8p2" with target_bits; "" = the job's own settings
    ttlora_params: int = 0
    ttlora_weighted_error_before: float = 0.0
    ttlora_weighted_error_after: float = 0.0


@dataclass(frozen=True)
class FinetuneBlock:
    """One block's recovery fine-tuning (report.json "finetune"): mean squared error of
    the block's output against the original model's states, before and after."""

    layer: int
    steps: int
    train_before: float
    holdout_before: float
    holdout_after: float
    kept_input: bool  # tuning did not lower the held-out error: nothing replaced
    modules_tuned: int


@dataclass(frozen=True)
class CompressResult:
    """A compress run that SUCCEEDED: where the checkpoint is and what it holds."""

    name: str  # the job's name, "jobs/<id>"
    state: JobState
    out: str  # the checkpoint directory (report.json beside the shards)
    calibration: str  # the calibration token file the job read
    seconds: float
    bits_per_param: float  # stored bits per compressed parameter, all matrices
    rms_weighted_relative_error: float
    parameters: float
    storage_bits: float
    matrices: List[MatrixResult] = field(default_factory=list)
    error: str = ""
    finetune: List[FinetuneBlock] = field(default_factory=list)  # with finetune_steps

    @property
    def report_path(self) -> str:
        return self.out.rstrip("/") + "/report.json"


def compress_result(d: dict) -> CompressResult:
    report = json.loads(d["report"]) if d.get("report") else {"matrices": [], "totals": {}}
    names = set(MatrixResult.__dataclass_fields__)
    matrices = [MatrixResult(**{k: v for k, v in m.items() if k in names})
                for m in report.get("matrices", [])]
    totals = report.get("totals", {})
    return CompressResult(
        name=d["job"], state=JobState[d["state"]], out=d["out"], calibration=d["calibration"],
        seconds=d["seconds"], bits_per_param=totals.get("bits_per_param", 0.0),
        rms_weighted_relative_error=totals.get("rms_weighted_relative_error", 0.0),
        parameters=totals.get("parameters", 0.0), storage_bits=totals.get("storage_bits", 0.0),
        matrices=matrices, error=d.get("error", ""),
        finetune=[FinetuneBlock(**{k: b[k] for k in FinetuneBlock.__dataclass_fields__})
                  for b in report.get("finetune", [])])


@dataclass(frozen=True)
class Perplexity:
    perplexity: float
    mean_nll: float  # mean next-token negative log-likelihood (nats)
    tokens: int  # predictions: windows x (seq_len - 1)


@dataclass(frozen=True)
class EvalResult:
    """Perplexity of the model (and of the baseline model, when one was given)."""

    perplexity: float
    mean_nll: float
    tokens: int
    windows: int
    seq_len: int
    shared_head_groups: int = 0  # with share_heads
    baseline: Optional[Perplexity] = None

    @property
    def ratio(self) -> Optional[float]:
        """perplexity / baseline perplexity (None without a baseline)."""
        return None if self.baseline is None else self.perplexity / self.baseline.perplexity


def eval_result(d: dict) -> EvalResult:
    base = d.get("baseline")
    return EvalResult(perplexity=d["perplexity"], mean_nll=d["mean_nll"], tokens=d["tokens"],
                      windows=d["windows"], seq_len=d["seq_len"],
                      shared_head_groups=d["shared_head_groups"],
                      baseline=Perplexity(**base) if base else None)


@dataclass(frozen=True)
class ExportResult:
    format: str  # dense | hf | peft
    model: str  # the dense checkpoint: out (dense, hf) or out/base (peft)
    adapter: Optional[str] = None  # peft: out/adapter


@dataclass(frozen=True)
class TokenizeResult:
    out: str  # the token file written
    tokens: int  # ids of the whole text
    samples: int  # windows written
    seq_len: int
    tokenizer_file: str  # which file of the model tokenized
