"""Typed results of caldera_client (caldera_client.types), every calderactl job option
reaching the coordinator's spec, and the progress of wait()/watch()."""
import datetime

import pytest

import caldera_client
from caldera.v1 import jobs_pb2
from caldera_client import JobState, ProgressEvent, TaskKind

FAST = dict(rank=8, iters=1, lplr_iters=1, seed=3)


def test_typed_job_enums_dataclasses_and_progress(client, model_dir, tmp_path):
    job = client.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "o"),
                        hidden_dtype="bf16", ttlora_alpha=8.0, calibration_mode="original",
                        modules=["v_proj"], **FAST)
    assert isinstance(job, caldera_client.Job) and isinstance(job.state, JobState)
    assert job.state in (JobState.QUEUED, JobState.RUNNING)
    assert isinstance(job.create_time, datetime.datetime)
    spec = job.spec
    assert (spec.hidden_dtype, spec.ttlora_alpha, spec.calibration_mode, spec.modules,
            spec.rank, spec.seed) == ("bf16", 8.0, "original", ["v_proj"], 8, 3)
    events = []
    final = client.wait(job, timeout=120, progress=events.append)
    assert final.state is JobState.SUCCEEDED and final.done
    assert all(isinstance(e, ProgressEvent) for e in events) and events
    assert events[-1].done == events[-1].total == final.progress.total > 0
    assert {t.kind for t in final.progress.tasks} == {TaskKind.CALIBRATE, TaskKind.DECOMPOSE,
                                                      TaskKind.FINALIZE}
    errors = final.progress.matrix_errors
    assert len(errors) == 5 and all(e.module == "v_proj" for e in errors)
    assert all(0 < e.weighted_relative_error < 1 for e in errors)
    # the view falls back to the message for anything else; old comparisons hold
    assert final.proto.spec.decomposition.rank == 8 and final.HasField("progress")
    assert final.state == jobs_pb2.SUCCEEDED
    watched = list(client.watch(final.name, progress=False))
    assert isinstance(watched[-1], caldera_client.JobEvent)
    assert watched[-1].job.state is JobState.SUCCEEDED
    assert any(j.name == job.name for j in client.list(state=JobState.SUCCEEDED))


def test_untyped_client_returns_messages(cluster, model_dir, tmp_path):
    with caldera_client.Client(cluster.server, typed=False) as c:
        job = c.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "o"),
                       modules=["q_proj"], **FAST)
        assert isinstance(job, jobs_pb2.Job)
        assert isinstance(c.wait(job.name, timeout=120, progress=False), jobs_pb2.Job)


def test_calibration_options_checked_before_submit(client, model_dir, tmp_path):
    with pytest.raises(caldera_client.InvalidJobError, match="calibration"):
        client.submit(model_dir, out=str(tmp_path / "o"))
    with pytest.raises(caldera_client.InvalidJobError, match="--hidden-dtype"):
        client.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "o"),
                      hidden_dtype="f8")


def test_calibration_text_needs_the_in_process_package(client, model_dir, tmp_path):
    pytest.importorskip("grpc")  # always there; caldera_local is not in the test venv
    try:
        import caldera_local  # noqa: F401
        pytest.skip("caldera_local is installed here")
    except ImportError:
        pass
    with pytest.raises(caldera_client.InvalidJobError, match="caldera_local"):
        client.submit(model_dir, out=str(tmp_path / "o"), calibration_text=__file__)


def test_values_a_newer_coordinator_sends_are_kept_not_refused():
    # A client older than a task kind (fine-tuning is kind 20) raised
    # "20 is not a valid TaskKind" on every status of such a job.
    kind = TaskKind(99)
    assert int(kind) == 99 and kind.name == "UNKNOWN_99"
    assert JobState(42).name == "UNKNOWN_42" and JobState(3) is JobState.SUCCEEDED
    with pytest.raises(ValueError):
        TaskKind("finetune")
