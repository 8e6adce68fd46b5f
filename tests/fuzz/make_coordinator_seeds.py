"""Writes the seed corpus of the coordinator_requests fuzz target
(tests/fuzz/corpus/coordinator_requests/): call sequences in the target's
format -- [op][length, 2 bytes little endian][payload] -- that walk a job
through submit, lease, heartbeat, complete, fail, cancel and watch, plus the
hostile values issue 17 found (NaN errors and busy seconds, huge ids).

    .venv/bin/python tests/fuzz/make_coordinator_seeds.py
(needs the Python stubs: client/python/generate_stubs.py).
"""
import math
import pathlib
import struct
import sys

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "client" / "python" / "caldera_client" / "_proto"))
from caldera.v1 import jobs_pb2, worker_pb2  # noqa: E402

OUT = ROOT / "tests" / "fuzz" / "corpus" / "coordinator_requests"
(CREATE, GET, LIST, CANCEL, WAIT, REGISTER, LEASE, HEARTBEAT, COMPLETE, FAIL) = range(10)


def call(op, payload):
    if not isinstance(payload, bytes):
        payload = payload.SerializeToString()
    return bytes([op]) + struct.pack("<H", len(payload)) + payload


def small_job(**spec):
    d = jobs_pb2.DecompositionSettings(rank=4, iters=1, lplr_iters=1)
    return jobs_pb2.CreateJobRequest(spec=jobs_pb2.JobSpec(decomposition=d, modules=["q_proj"],
                                                           **spec))


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    me = dict(worker_id="#", attempt_id="#")
    lease = worker_pb2.LeaseTaskRequest(worker_id="#", max_memory_bytes=1 << 30)
    seeds = {
        "submit_and_read": [call(CREATE, small_job()), call(GET, b"#"), call(LIST, jobs_pb2.ListJobsRequest(page_size=5)),
                            call(WAIT, b"\xff#")],
        "lease_complete_calibrate": [
            call(CREATE, small_job()), call(REGISTER, worker_pb2.RegisterWorkerRequest(hostname="w", slots=1)),
            call(LEASE, lease),
            call(HEARTBEAT, worker_pb2.HeartbeatRequest(fraction_done=0.5, message="half", **me)),
            call(COMPLETE, worker_pb2.CompleteTaskRequest(
                bytes_read=10, bytes_written=20, busy_seconds=0.1,
                calibrate=worker_pb2.CalibrateResult(hessians_uri="h", hidden_states_uri="s"), **me)),
            call(LEASE, lease), call(GET, b"#")],
        "complete_nan": [
            call(CREATE, small_job()), call(REGISTER, worker_pb2.RegisterWorkerRequest(hostname="w", slots=2)),
            call(LEASE, lease),
            call(COMPLETE, worker_pb2.CompleteTaskRequest(
                busy_seconds=math.nan, bytes_read=-1,
                matrix_errors=[jobs_pb2.MatrixError(layer=0, module="q_proj",
                                                    weighted_relative_error=math.nan)],
                decompose=worker_pb2.DecomposeResult(artifact_uri="a"), **me))],
        "fail_retry_cancel": [
            call(CREATE, small_job(calibration_shards=2)),
            call(REGISTER, worker_pb2.RegisterWorkerRequest(hostname="w", slots=1)),
            call(LEASE, lease), call(FAIL, worker_pb2.FailTaskRequest(error="boom", retryable=True, **me)),
            call(LEASE, lease), call(FAIL, worker_pb2.FailTaskRequest(error="x" * 5000, retryable=False, **me)),
            call(CANCEL, b"#"), call(CANCEL, b"#"), call(GET, b"jobs/j-000000000000")],
        "bad_specs": [
            call(CREATE, small_job(calibration_mode="sideways")),
            call(CREATE, jobs_pb2.CreateJobRequest(request_id="r" * 300, spec=jobs_pb2.JobSpec(
                decomposition=jobs_pb2.DecompositionSettings(rank=-3, q_bits=99)))),
            call(CREATE, small_job(out="/")), call(CREATE, small_job(model="/dev/zero")),
            call(LIST, jobs_pb2.ListJobsRequest(page_size=-1, page_token="zz", state=77))],
        "unknown_worker": [
            call(LEASE, worker_pb2.LeaseTaskRequest(worker_id="nobody", wait_seconds=1e9)),
            call(HEARTBEAT, worker_pb2.HeartbeatRequest(worker_id="nobody", attempt_id="a", fraction_done=-5)),
            call(COMPLETE, worker_pb2.CompleteTaskRequest(worker_id="", attempt_id="")),
            call(REGISTER, worker_pb2.RegisterWorkerRequest(hostname="h" * 2000, slots=-1,
                                                            max_memory_bytes=-5))],
        # Issue 37: ids and hostnames of any size ("*<k>[c]" = 2^k bytes of c).
        "huge_worker_ids": [
            call(CREATE, small_job()),
            call(REGISTER, worker_pb2.RegisterWorkerRequest(hostname="*\x14\n", slots=1)),
            call(LEASE, worker_pb2.LeaseTaskRequest(worker_id="*\x16", max_memory_bytes=1 << 30)),
            call(HEARTBEAT, worker_pb2.HeartbeatRequest(worker_id="*\x15", attempt_id="#")),
            call(FAIL, worker_pb2.FailTaskRequest(worker_id="*\x0a\x01", attempt_id="#")),
            call(COMPLETE, worker_pb2.CompleteTaskRequest(worker_id="*\x09", attempt_id="#")),
            call(LEASE, lease), call(LIST, jobs_pb2.ListJobsRequest(page_size=50))],
    }
    for name, calls in seeds.items():
        (OUT / name).write_bytes(b"".join(calls))
    print(f"wrote {len(seeds)} seeds to {OUT}")


if __name__ == "__main__":
    main()
