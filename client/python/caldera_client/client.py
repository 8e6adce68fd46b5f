"""A small friendly API over the JobService stubs."""
import os
import time
from typing import Iterator, Optional, Sequence, Union

import grpc

from caldera.v1 import jobs_pb2, jobs_pb2_grpc  # generated (generate_stubs.py)
from caldera_client._common import ProgressArg, Reporter
from caldera_client.errors import (
    InvalidJobError,
    JobCancelledError,
    JobFailedError,
    UnavailableError,
    WaitTimeoutError,
    from_rpc_error,
)
from caldera_client.types import Job, JobEvent

_TERMINAL = {jobs_pb2.SUCCEEDED, jobs_pb2.FAILED, jobs_pb2.CANCELLED}


def _read(path: Optional[str]) -> Optional[bytes]:
    if path is None:
        return None
    with open(path, "rb") as f:
        return f.read()


def _open_channel(server: str, tls_ca: Optional[str], tls_cert: Optional[str],
                  tls_key: Optional[str]) -> grpc.Channel:
    if (tls_cert is None) != (tls_key is None):
        raise ValueError("give both tls_cert and tls_key, or neither")
    if tls_ca is None and tls_cert is None:
        return grpc.insecure_channel(server)
    creds = grpc.ssl_channel_credentials(root_certificates=_read(tls_ca),
                                         private_key=_read(tls_key),
                                         certificate_chain=_read(tls_cert))
    return grpc.secure_channel(server, creds)


def _name(job) -> str:
    if not isinstance(job, str):  # a Job (typed or proto)
        job = job.name
    return job if job.startswith("jobs/") else f"jobs/{job}"


def _report(reporter: Reporter, job) -> None:
    done = sum(t.done for t in job.progress.tasks)
    total = sum(t.total for t in job.progress.tasks)
    reporter.progress(done, total, job.message)


def _calibration_from_text(model, text, out, calibration, seq_len, samples, seed) -> str:
    """calderactl's --calibration-text: the text tokenized with the model's own
    tokenizer, by the in-process package caldera_local (the C++ tokenizers)."""
    try:
        import caldera_local
    except ImportError:
        raise InvalidJobError(
            "calibration_text needs the caldera_local package (pip install "
            "client/python_local; docs/python.md) to tokenize with the model's tokenizer; "
            "or tokenize with `calderactl tokenize` and pass calibration=") from None
    return caldera_local.prepare_calibration(model, text, out, calibration or None,
                                             seq_len=seq_len, samples=samples, seed=seed)


class Client:
    """Talks to one coordinator. Methods raise caldera_client.errors types."""

    def __init__(self, server: str = "localhost:50051", timeout: float = 30.0,
                 channel: Optional[grpc.Channel] = None, *, token: Optional[str] = None,
                 tls_ca: Optional[str] = None, tls_cert: Optional[str] = None,
                 tls_key: Optional[str] = None, typed: bool = True):
        """`typed`: return Job / JobEvent views (caldera_client.types: enums,
        dataclasses, datetimes); False returns the raw protobuf messages. `token`:
        bearer token sent on every call (default $CALDERA_TOKEN; none for a
        coordinator in local mode). `tls_ca`: PEM file of the CA that signed the
        coordinator's certificate (default $CALDERA_TLS_CA): connect with TLS.
        `tls_cert`/`tls_key`: PEM files of a client certificate (mutual TLS).
        docs/security.md describes the setup."""
        if token is None:
            token = os.environ.get("CALDERA_TOKEN", "").strip() or None
        if tls_ca is None:
            tls_ca = os.environ.get("CALDERA_TLS_CA") or None
        if channel is None:
            channel = _open_channel(server, tls_ca, tls_cert, tls_key)
        self._channel = channel
        self._metadata = (("authorization", f"Bearer {token}"),) if token else None
        self._stub = jobs_pb2_grpc.JobServiceStub(self._channel)
        self._timeout = timeout
        self._typed = typed

    def _job(self, job):
        return Job.from_proto(job) if self._typed else job

    def close(self) -> None:
        self._channel.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _call(self, method, request, timeout=None):
        try:
            return method(request, timeout=timeout or self._timeout, metadata=self._metadata)
        except grpc.RpcError as e:
            raise from_rpc_error(e) from None

    def submit(self, model: str, calibration: Optional[str] = None, out: str = "", *,
               method: Optional[str] = None,
               rank: Optional[int] = None, q_bits: Optional[int] = None,
               lr_bits: Optional[int] = None, quantizer: Optional[str] = None,
               iters: Optional[int] = None, lplr_iters: Optional[int] = None,
               seed: Optional[int] = None, ttlora_rank: Optional[int] = None,
               ttlora_init: Optional[str] = None, ttlora_alpha: Optional[float] = None,
               modules: Optional[Sequence[str]] = None,
               request_id: str = "", iterations: Optional[int] = None,
               lplr_iterations: Optional[int] = None, overwrite: bool = False,
               q_group_size: Optional[int] = None, incoherence: Optional[str] = None,
               calibration_shards: Optional[int] = None,
               calibration_mode: Optional[str] = None,
               target_bits: Optional[float] = None,
               share_heads: float = 0.0, serve: Optional[str] = None,
               hidden_dtype: Optional[str] = None,
               calibration_text: Optional[str] = None, calibration_seq_len: int = 0,
               calibration_samples: int = 0,
               calibration_seed: Optional[int] = None,
               finetune_steps: int = 0, finetune_lr: Optional[float] = None,
               finetune_holdout: Optional[float] = None) -> Union[Job, jobs_pb2.Job]:
        """Creates a job (validated by the coordinator first); unset settings take the
        documented defaults. The same request_id twice returns the same job.

        Settings have the names of calderactl's flags (--iters -> iters). `iterations` and
        `lplr_iterations` are the old names of `iters` and `lplr_iters`, still accepted.
        `overwrite` (calderactl --overwrite) writes into an `out` holding files not written
        by caldera (docs/security.md). `q_group_size` (uniform Q: weights per scale group),
        `incoherence` ("auto" | "rht" | "none"), `calibration_shards` and `calibration_mode`
        ("sequential" | "original") are calderactl's --q-group-size, --incoherence,
        --calibration-shards and --calibration-mode. `target_bits` (--target-bits) picks each
        matrix's setting so that each block averages within that many stored bits per parameter. `ttlora_alpha`
        (--ttlora-alpha) is the TT-LoRA adapter scale. `share_heads`
        (--share-heads) is the DirectShare fraction in [0, 1] of attention KV groups aliased to
        an earlier layer's (docs/format/head-sharing.md). `hidden_dtype` ("f32" | "bf16",
        --hidden-dtype) is how calibrate tasks store the hidden states between layers. `serve`
        (--serve: "none" | "vllm" | "llamacpp") restricts every setting to what `calderactl
        export --format compressed-tensors` writes and vLLM serves; as in calderactl, unset
        `quantizer`, `q_bits` and `lr_bits` then take "int", 4 and 16
        (docs/format/compressed-tensors.md). "llamacpp": to what `export --format gguf` writes
        in llama.cpp's exact block types; unset `quantizer`, `method`, `q_bits` and
        `q_group_size` take "int", "ldlq", 4 and 32 (docs/format/gguf.md).
        `finetune_steps` (--finetune-steps; 0 = off), `finetune_lr` and `finetune_holdout`
        plan a recovery fine-tuning task per block after its decompositions; report.json's
        "finetune" lists each block's held-out error before and after.

        `calibration_text` (--calibration-text) instead of `calibration`: a text file
        (.txt, .jsonl) tokenized here with the model's own tokenizer into `calibration`,
        else `<out>.calibration.safetensors`, in windows of `calibration_seq_len` tokens
        (default min(512, max_position_embeddings)), `calibration_samples` of them
        (default min(128, windows)), the first or drawn with `calibration_seed`; needs the
        in-process package caldera_local (docs/python.md) and storage this client can
        write."""
        if serve == "vllm":
            quantizer = quantizer or "int"
            q_bits = q_bits or 4
            lr_bits = lr_bits or 16
        if serve == "llamacpp":
            quantizer = quantizer or "int"
            method = method or "ldlq"
            q_bits = q_bits or 4
            q_group_size = q_group_size or 32
        if not out:
            raise InvalidJobError("out (the output checkpoint directory) is required")
        if calibration_text:
            calibration = _calibration_from_text(model, calibration_text, out, calibration,
                                                 calibration_seq_len, calibration_samples,
                                                 calibration_seed)
        elif not calibration:
            raise InvalidJobError("calibration (a token file) or calibration_text (a text "
                                  "file) is required")
        if iters is None:
            iters = iterations
        if lplr_iters is None:
            lplr_iters = lplr_iterations
        d = jobs_pb2.DecompositionSettings(
            method=method or "", rank=rank or 0, q_bits=q_bits or 0, lr_bits=lr_bits or 0,
            quantizer=quantizer or "", iters=iters or 0, lplr_iters=lplr_iters or 0,
            q_group_size=q_group_size or 0, incoherence=incoherence or "")
        if seed is not None:
            d.seed = seed
        spec = jobs_pb2.JobSpec(
            model=model, calibration=calibration, out=out, decomposition=d,
            ttlora=jobs_pb2.TtLoraSettings(rank=ttlora_rank or 0, init=ttlora_init or "",
                                           alpha=ttlora_alpha or 0.0),
            modules=list(modules or []), overwrite=overwrite,
            calibration_shards=calibration_shards or 0,
            calibration_mode=calibration_mode or "", target_bits=target_bits or 0.0,
            share_heads=share_heads or 0.0, hidden_dtype=hidden_dtype or "",
            serve=serve or "", finetune_steps=finetune_steps or 0,
            finetune_lr=finetune_lr or 0.0, finetune_holdout=finetune_holdout or 0.0)
        return self._job(self._call(self._stub.CreateJob,
                                    jobs_pb2.CreateJobRequest(spec=spec, request_id=request_id),
                                    timeout=max(self._timeout, 300)))

    def get(self, job) -> Union[Job, jobs_pb2.Job]:
        return self._job(self._call(self._stub.GetJob, jobs_pb2.GetJobRequest(name=_name(job))))

    def list(self, state=None, page_size: int = 50) -> Iterator[Union[Job, jobs_pb2.Job]]:
        """Every job, newest first (pages fetched as needed); `state` like "RUNNING" or
        JobState.RUNNING."""
        token = ""
        if isinstance(state, int):
            state_value = int(state)
        else:
            state_value = jobs_pb2.JobState.Value(state.upper()) if state else 0
        while True:
            page = self._call(self._stub.ListJobs, jobs_pb2.ListJobsRequest(
                page_size=page_size, page_token=token, state=state_value))
            yield from (self._job(j) for j in page.jobs)
            token = page.next_page_token
            if not token:
                return

    def cancel(self, job) -> Union[Job, jobs_pb2.Job]:
        return self._job(self._call(self._stub.CancelJob,
                                    jobs_pb2.CancelJobRequest(name=_name(job))))

    def watch(self, job, progress: ProgressArg = None) -> Iterator[Union[JobEvent,
                                                                        jobs_pb2.JobEvent]]:
        """Events of the job: the current snapshot first, then one per change; ends after
        the terminal state. `progress`: None (a bar in a terminal or notebook, as
        caldera_local's), True, False, or a callable taking a ProgressEvent."""
        with Reporter("watch", progress, "task") as reporter:
            try:
                for event in self._stub.WatchJob(jobs_pb2.WatchJobRequest(name=_name(job)),
                                                 metadata=self._metadata):
                    _report(reporter, event.job)
                    yield JobEvent.from_proto(event) if self._typed else event
            except grpc.RpcError as e:
                raise from_rpc_error(e) from None

    def wait(self, job, timeout: Optional[float] = None,
             progress: ProgressArg = None) -> Union[Job, jobs_pb2.Job]:
        """Blocks until the job ends and returns it; raises JobFailedError,
        JobCancelledError, or WaitTimeoutError (the job goes on). Survives short
        coordinator outages (re-watches). `progress` as for watch()."""
        with Reporter("wait", progress, "task") as reporter:
            return self._wait(job, timeout, reporter)

    def _wait(self, job, timeout: Optional[float], reporter: Reporter):
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                raise WaitTimeoutError(f"{_name(job)} did not end within {timeout} s")
            try:
                stream = self._stub.WatchJob(jobs_pb2.WatchJobRequest(name=_name(job)),
                                             timeout=remaining, metadata=self._metadata)
                last = None
                for event in stream:
                    last = event.job
                    _report(reporter, last)
                if last is not None and last.state in _TERMINAL:
                    last = self._job(last)
                    if last.state == jobs_pb2.FAILED:
                        raise JobFailedError(last)
                    if last.state == jobs_pb2.CANCELLED:
                        raise JobCancelledError(last)
                    return last
            except grpc.RpcError as e:
                err = from_rpc_error(e)
                if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                    raise WaitTimeoutError(f"{_name(job)} did not end within {timeout} s") from None
                if not isinstance(err, UnavailableError):
                    raise err from None
            time.sleep(0.5)
