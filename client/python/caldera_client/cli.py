"""`python -m caldera_client` (also installed as `caldera-client`): a thin command
line over Client for pipeline steps that have Python but not calderactl.

    python -m caldera_client submit --model s3://b/m --calibration s3://b/c.safetensors \\
        --out s3://b/out --rank 64 --wait
    python -m caldera_client status jobs/abc --json
    python -m caldera_client watch jobs/abc
    python -m caldera_client wait jobs/abc --timeout 3600
    python -m caldera_client cancel jobs/abc
    python -m caldera_client list --state RUNNING

Exit codes are calderactl's: 0 succeeded (or the command did what it was asked),
2 invalid input / not found / not allowed (do not retry), 3 job failed, 4 job
cancelled, 75 coordinator unavailable or wait timed out (retry later), 1 other.
"""
import argparse
import json
import os
import sys
from typing import List, Optional

from google.protobuf import json_format

from caldera_client import errors
from caldera_client.client import Client, jobs_pb2

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2
EXIT_FAILED = 3
EXIT_CANCELLED = 4
EXIT_UNAVAILABLE = 75


def _exit_code_for(error: errors.CalderaError) -> int:
    if isinstance(error, errors.JobFailedError):
        return EXIT_FAILED
    if isinstance(error, errors.JobCancelledError):
        return EXIT_CANCELLED
    if isinstance(error, (errors.UnavailableError, errors.WaitTimeoutError)):
        return EXIT_UNAVAILABLE
    if isinstance(error, (errors.InvalidJobError, errors.JobNotFoundError,
                          errors.JobStateError, errors.Unauthenticated,
                          errors.PermissionDenied)):
        return EXIT_INVALID
    return EXIT_INTERNAL


def _exit_code_for_state(state: int) -> int:
    return {jobs_pb2.SUCCEEDED: EXIT_OK, jobs_pb2.FAILED: EXIT_FAILED,
            jobs_pb2.CANCELLED: EXIT_CANCELLED}.get(state, EXIT_OK)


def _job_dict(job) -> dict:
    return json_format.MessageToDict(getattr(job, "proto", job), preserving_proto_field_name=True)


def _print_job(job, as_json: bool) -> None:
    if as_json:
        print(json.dumps(_job_dict(job), sort_keys=True))
        return
    state = jobs_pb2.JobState.Name(job.state)
    line = f"{job.name} {state}"
    done = sum(t.done for t in job.progress.tasks)
    total = sum(t.total for t in job.progress.tasks)
    if total:
        line += f" tasks {done}/{total}"
    if job.error:
        line += f": {job.error}"
    elif job.message:
        line += f" ({job.message})"
    print(line, flush=True)


def _add_connection_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--server", default=os.environ.get("CALDERA_SERVER", "localhost:50051"),
                   help="coordinator address (default $CALDERA_SERVER or localhost:50051)")
    p.add_argument("--token", default=None,
                   help="bearer token (default $CALDERA_TOKEN; docs/security.md)")
    p.add_argument("--tls-ca", default=None, help="PEM of the coordinator's CA (TLS)")
    p.add_argument("--tls-cert", default=None, help="client certificate PEM (mutual TLS)")
    p.add_argument("--tls-key", default=None, help="client key PEM (mutual TLS)")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per RPC")


def _parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(
        prog="python -m caldera_client",
        description="Submit and follow Caldera Service jobs from Python environments.")
    sub = top.add_subparsers(dest="command", required=True)

    s = sub.add_parser("submit", help="create a job (validated by the coordinator)")
    _add_connection_flags(s)
    s.add_argument("--model", required=True)
    s.add_argument("--calibration", default=None,
                   help="calibration token file (required unless --calibration-text)")
    s.add_argument("--calibration-text", default=None,
                   help="a text file tokenized here with the model's tokenizer (needs the "
                        "caldera_local package; docs/python.md)")
    s.add_argument("--out", required=True)
    for flag, kind in (("--method", str), ("--rank", int), ("--q-bits", int),
                       ("--lr-bits", int), ("--quantizer", str), ("--iters", int),
                       ("--lplr-iters", int), ("--seed", int), ("--q-group-size", int),
                       ("--incoherence", str), ("--ttlora-rank", int),
                       ("--ttlora-init", str), ("--calibration-shards", int),
                       ("--calibration-mode", str), ("--target-bits", float),
                       ("--share-heads", float), ("--ttlora-alpha", float),
                       ("--hidden-dtype", str), ("--calibration-seq-len", int),
                       ("--calibration-samples", int), ("--calibration-seed", int),
                       ("--serve", str), ("--finetune-steps", int),
                       ("--finetune-lr", float), ("--finetune-holdout", float)):
        s.add_argument(flag, type=kind, default=None)
    s.add_argument("--modules", default=None,
                   help="comma-separated module names (default: every linear)")
    s.add_argument("--request-id", default="",
                   help="idempotency key: the same id and spec return the same job")
    s.add_argument("--overwrite", action="store_true")
    s.add_argument("--wait", action="store_true",
                   help="follow the job and exit with its outcome (0, 3 or 4)")
    s.add_argument("--json", action="store_true", help="print the job as JSON")

    for name, text in (("status", "print a job's state"),
                       ("watch", "print each change until the job ends; exit by outcome"),
                       ("wait", "block until the job ends; exit by outcome"),
                       ("cancel", "cancel a job")):
        p = sub.add_parser(name, help=text)
        _add_connection_flags(p)
        p.add_argument("job", help="jobs/ID or ID")
        p.add_argument("--json", action="store_true", help="print JSON")
        if name == "wait":
            p.add_argument("--wait-timeout", type=float, default=None,
                           help="give up after this many seconds (exit 75; the job goes on)")

    ls = sub.add_parser("list", help="list jobs, newest first")
    _add_connection_flags(ls)
    ls.add_argument("--state", default=None, help="only jobs in this state (e.g. RUNNING)")
    ls.add_argument("--json", action="store_true", help="one JSON object per line")
    return top


def _submit(c: Client, a: argparse.Namespace) -> int:
    modules = [m for m in a.modules.split(",") if m] if a.modules else None
    job = c.submit(a.model, a.calibration, a.out, method=a.method, rank=a.rank,
                   q_bits=a.q_bits, lr_bits=a.lr_bits, quantizer=a.quantizer,
                   iters=a.iters, lplr_iters=a.lplr_iters, seed=a.seed,
                   q_group_size=a.q_group_size, incoherence=a.incoherence,
                   ttlora_rank=a.ttlora_rank, ttlora_init=a.ttlora_init, modules=modules,
                   calibration_shards=a.calibration_shards,
                   calibration_mode=a.calibration_mode, target_bits=a.target_bits,
                   share_heads=a.share_heads or 0.0, serve=a.serve, request_id=a.request_id,
                   overwrite=a.overwrite, ttlora_alpha=a.ttlora_alpha,
                   finetune_steps=a.finetune_steps or 0, finetune_lr=a.finetune_lr,
                   finetune_holdout=a.finetune_holdout,
                   hidden_dtype=a.hidden_dtype, calibration_text=a.calibration_text,
                   calibration_seq_len=a.calibration_seq_len or 0,
                   calibration_samples=a.calibration_samples or 0,
                   calibration_seed=a.calibration_seed)
    _print_job(job, a.json)
    if not a.wait:
        return EXIT_OK
    return _follow(c, job.name, a.json)


def _follow(c: Client, name: str, as_json: bool) -> int:
    last = None
    for event in c.watch(name, progress=False):
        last = event.job
        if as_json:
            print(json.dumps({"sequence": event.sequence, "message": event.message,
                              "job": _job_dict(event.job)}, sort_keys=True), flush=True)
        else:
            _print_job(event.job, False)
    if last is None:
        raise errors.UnavailableError(f"the watch of {name} ended without an event")
    return _exit_code_for_state(last.state)


def _run(a: argparse.Namespace) -> int:
    with Client(a.server, timeout=a.timeout, token=a.token, tls_ca=a.tls_ca,
                tls_cert=a.tls_cert, tls_key=a.tls_key) as c:
        if a.command == "submit":
            return _submit(c, a)
        if a.command == "status":
            _print_job(c.get(a.job), a.json)
            return EXIT_OK
        if a.command == "watch":
            return _follow(c, a.job, a.json)
        if a.command == "wait":
            _print_job(c.wait(a.job, timeout=a.wait_timeout), a.json)
            return EXIT_OK
        if a.command == "cancel":
            _print_job(c.cancel(a.job), a.json)
            return EXIT_OK
        for job in c.list(state=a.state):
            _print_job(job, a.json)
        return EXIT_OK


def main(argv: Optional[List[str]] = None) -> int:
    a = _parser().parse_args(argv)
    try:
        return _run(a)
    except errors.CalderaError as e:
        if isinstance(e, (errors.JobFailedError, errors.JobCancelledError)):
            _print_job(e.job, getattr(a, "json", False))
        print(f"caldera_client: {e}", file=sys.stderr)
        return _exit_code_for(e)
    except (OSError, ValueError) as e:  # unreadable TLS files, a bad --state name
        print(f"caldera_client: {e}", file=sys.stderr)
        return EXIT_INVALID
