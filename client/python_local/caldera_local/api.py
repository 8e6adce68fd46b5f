"""compress, eval, export, tokenize: calderactl's commands as functions, run in this
process by the C++ library (operations/ through the _native extension). Keyword
arguments are calderactl's flags (--q-bits -> q_bits); unset ones take calderactl's
defaults. Errors raise caldera_local.errors types carrying the C++ message."""
import os
from typing import Optional, Sequence, Union

from caldera_local import _native
from caldera_local._common import (
    JobCancelledError,
    JobFailedError,
    JobState,
    ProgressArg,
    Reporter,
)
from caldera_local.results import (
    CompressResult,
    EvalResult,
    ExportResult,
    TokenizeResult,
    compress_result,
    eval_result,
)

PathLike = Union[str, "os.PathLike[str]"]


def _path(p: Optional[PathLike]) -> Optional[str]:
    return None if p is None else os.fspath(p)


def compress(model: PathLike, out: PathLike, calibration: Optional[PathLike] = None, *,
             calibration_text: Optional[PathLike] = None, calibration_seq_len: int = 0,
             calibration_samples: int = 0, calibration_seed: Optional[int] = None,
             method: Optional[str] = None, rank: Optional[int] = None,
             q_bits: Optional[int] = None, lr_bits: Optional[int] = None,
             quantizer: Optional[str] = None, q_group_size: Optional[int] = None,
             incoherence: Optional[str] = None, iters: Optional[int] = None,
             lplr_iters: Optional[int] = None, seed: Optional[int] = None,
             ttlora_rank: Optional[int] = None, ttlora_init: Optional[str] = None,
             ttlora_alpha: Optional[float] = None, calibration_mode: Optional[str] = None,
             calibration_shards: Optional[int] = None, target_bits: Optional[float] = None,
             hidden_dtype: Optional[str] = None, modules: Optional[Sequence[str]] = None,
             share_heads: Optional[float] = None, serve: Optional[str] = None,
             finetune_steps: Optional[int] = None, finetune_lr: Optional[float] = None,
             finetune_holdout: Optional[float] = None,
             overwrite: bool = False, request_id: str = "", workers: int = 2, threads: int = 0, device: str = "cpu",
             progress: ProgressArg = None) -> CompressResult:
    """Compresses `model` (a Hugging Face directory: path, file:// or s3://) into a
    CALDERA checkpoint at `out`, as `calderactl compress` does: a coordinator and
    `workers` workers inside this process. Calibration: a token file (`calibration`)
    or a text file (`calibration_text`, tokenized with the model's tokenizer into
    `calibration`, or `<out>.calibration.safetensors`). `serve="vllm"` (--serve vllm)
    restricts every setting to what export(format="compressed-tensors") writes and vLLM
    serves; unset `quantizer`, `q_bits` and `lr_bits` then take "int", 4 and 16.
    `serve="llamacpp"`: what export(format="gguf") writes in llama.cpp's exact Q4_0/Q8_0;
    unset `quantizer`, `method`, `q_bits`, `q_group_size` take "int", "ldlq", 4, 32.
    `finetune_steps` (--finetune-steps; 0 = off), `finetune_lr` and `finetune_holdout`
    add a recovery fine-tuning task per block; CompressResult.finetune lists each block's
    held-out error before and after.

    `progress`: None (a bar in a terminal or notebook), True, False, or a callable
    taking a ProgressEvent. Ctrl-C cancels the job (its scratch is removed) and raises
    KeyboardInterrupt. Raises JobFailedError / JobCancelledError when the job ends so,
    InvalidJobError (a ValueError) for bad settings, JobNotFoundError for missing files.
    """
    options = {k: v for k, v in locals().items()
               if k not in ("progress", "model", "out", "calibration", "calibration_text",
                            "modules")}
    options.update(model=_path(model), out=_path(out), calibration=_path(calibration),
                   calibration_text=_path(calibration_text),
                   modules=list(modules) if modules is not None else None)
    with Reporter("compress", progress, "task") as r:
        d = _native.compress(options, r.progress, r.note)
    result = compress_result(d)
    if result.state == JobState.FAILED:
        raise JobFailedError(result)
    if result.state == JobState.CANCELLED:
        raise JobCancelledError(result)
    return result


def eval(model: PathLike, tokens: Optional[PathLike] = None, *,  # noqa: A001 (calderactl's name)
         text: Optional[PathLike] = None, baseline_model: Optional[PathLike] = None,
         seq_len: int = 0, samples: int = 0, batch: int = 1, share_heads: float = 0.0,
         progress: ProgressArg = None) -> EvalResult:
    """Perplexity of `model` on a token file (`tokens`) or a text file (`text`, the
    WikiText-2 protocol: windows of `seq_len`, default min(2048, the model's
    max_position_embeddings); `samples` keeps the first N windows). `baseline_model`:
    also evaluate this model on the same tokens (EvalResult.baseline, .ratio).
    `share_heads`: evaluate with that fraction of head groups aliased (DirectShare
    alone), as calderactl eval --share-heads. Progress: one step per decoder layer."""
    options = {"model": _path(model), "tokens": _path(tokens), "text": _path(text),
               "baseline": _path(baseline_model), "seq_len": seq_len, "samples": samples,
               "batch": batch, "share_heads": share_heads}
    with Reporter("eval", progress, "layer") as r:
        return eval_result(_native.eval(options, r.progress, r.note))


def export(model: PathLike, out: PathLike, *, format: str = "dense",  # noqa: A002
           dtype: Optional[str] = None, ft_rank: int = 0, dense_fallback: bool = False,
           merge_lr: bool = False, progress: ProgressArg = None) -> ExportResult:
    """Rebuilds a dense checkpoint from the CALDERA checkpoint `model` at `out`:
    format "dense" (float32 linears), "hf" (a Hugging Face checkpoint in `dtype`,
    default the model's torch_dtype) or "peft" (out/base plus the PEFT LoRA adapter
    out/adapter of the first `ft_rank` columns of L / rows of R); "compressed-tensors";
    "gguf" (one .gguf file `out` for llama.cpp; `dense_fallback` writes the linears no
    GGUF block type holds dense instead of refusing them; L·R goes to the LoRA adapter
    `<out>.lora.gguf` (ExportResult.adapter), or with `merge_lr` into the base;
    docs/format/gguf.md)."""
    options = {"model": _path(model), "out": _path(out), "format": format, "dtype": dtype,
               "ft_rank": ft_rank, "dense_fallback": dense_fallback, "merge_lr": merge_lr}
    with Reporter("export", progress, "layer") as r:
        d = _native.export(options, r.progress, r.note)
    return ExportResult(format=format, model=d["model"], adapter=d["adapter"])


def tokenize(model: PathLike, text: PathLike, out: PathLike, seq_len: int, *,
             samples: int = 0, seed: Optional[int] = None, field: str = "text",
             no_bos: bool = False) -> TokenizeResult:
    """Tokenizes the text file `text` (.txt, or .jsonl with `field`) with the
    tokenizer of the model directory `model` into the token file `out` that compress
    and eval take: consecutive windows of `seq_len` ids (the last partial one
    dropped); `samples` keeps the first N (or N drawn with `seed`)."""
    options = {"tokenizer": _path(model), "text": _path(text), "out": _path(out),
               "seq_len": seq_len, "samples": samples, "seed": seed, "field": field,
               "no_bos": no_bos}
    return TokenizeResult(**_native.tokenize(options))


def decode(model: PathLike, tokens: PathLike) -> str:
    """The text of the token file `tokens`, with the tokenizer of `model`
    (calderactl tokenize --decode)."""
    return _native.decode(_path(model), _path(tokens))


def prepare_calibration(model: PathLike, text: PathLike, out: PathLike,
                        calibration: Optional[PathLike] = None, *, seq_len: int = 0,
                        samples: int = 0, seed: Optional[int] = None) -> str:
    """Tokenizes the calibration text `text` with the tokenizer of `model` into the
    token file a job for output `out` reads, as calderactl's --calibration-text does:
    at `calibration`, else `<out>.calibration.safetensors`; windows of `seq_len`
    (default min(512, max_position_embeddings)), `samples` of them (default
    min(128, windows)), the first ones or drawn with `seed`. Returns the file's URI.
    caldera_client's submit(calibration_text=...) calls it."""
    options = {"model": _path(model), "out": _path(out), "calibration": _path(calibration),
               "calibration_text": _path(text), "calibration_seq_len": seq_len,
               "calibration_samples": samples, "calibration_seed": seed}
    with Reporter("calibration", False) as r:
        return _native.prepare_calibration(options, r.note)
