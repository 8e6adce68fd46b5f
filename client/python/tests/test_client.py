"""caldera_client against a real coordinator and worker."""
import json
import os
import pathlib
import re

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

import caldera_client
from caldera.v1 import jobs_pb2

REPO = pathlib.Path(__file__).resolve().parents[3]
FAST = dict(rank=8, iters=1, lplr_iters=1, seed=3)


def test_submit_watch_wait_succeeds(client, model_dir, tmp_path):
    job = client.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "out"),
                        **FAST)
    assert job.name.startswith("jobs/")
    assert job.state in (jobs_pb2.QUEUED, jobs_pb2.RUNNING)
    events = list(client.watch(job.name))
    assert events, "watch yielded nothing"
    assert [e.sequence for e in events] == sorted(e.sequence for e in events)
    assert events[-1].job.state == jobs_pb2.SUCCEEDED
    final = client.wait(job.name, timeout=120)
    assert final.state == jobs_pb2.SUCCEEDED
    assert len(final.progress.matrix_errors) == 35
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert len(report["matrices"]) == 35
    assert any(j.name == job.name for j in client.list())
    assert any(j.name == job.name for j in client.list(state="SUCCEEDED", page_size=1))


def test_request_id_is_idempotent(client, model_dir, tmp_path):
    args = (model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "out"))
    a = client.submit(*args, request_id="py-idem", **FAST)
    b = client.submit(*args, request_id="py-idem", **FAST)
    assert a.name == b.name
    client.wait(a.name, timeout=120)


def test_errors_are_typed(client, model_dir, tmp_path):
    with pytest.raises(caldera_client.InvalidJobError, match="--rank 100 is larger than"):
        client.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "o"),
                      rank=100)
    with pytest.raises(caldera_client.InvalidJobError, match="no-such-model"):
        client.submit(str(tmp_path / "no-such-model"), f"{model_dir}/calibration.safetensors",
                      str(tmp_path / "o"))
    with pytest.raises(caldera_client.JobNotFoundError):
        client.get("jobs/j-000000000000")
    with pytest.raises(caldera_client.UnavailableError) as e:
        caldera_client.Client("127.0.0.1:1", timeout=2).get("jobs/x")
    assert e.value.retryable


def test_serve_vllm_takes_the_served_defaults(client, model_dir, tmp_path):
    # serve="vllm" (calderactl --serve vllm): unset quantizer, q_bits, lr_bits become
    # int, 4, 16; a setting vLLM cannot serve is refused naming the flag.
    job = client.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "out"),
                        serve="vllm", q_group_size=65536, **FAST)
    d = job.spec.decomposition
    assert (job.spec.serve, d.quantizer, d.q_bits, d.lr_bits) == ("vllm", "int", 4, 16)
    assert client.wait(job.name, timeout=120).state == jobs_pb2.SUCCEEDED
    with pytest.raises(caldera_client.InvalidJobError, match="--serve vllm.*--quantizer int"):
        client.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "o"),
                      serve="vllm", quantizer="e8p", q_bits=2)


def test_serve_llamacpp_takes_the_gguf_defaults(client, model_dir, tmp_path):
    # serve="llamacpp" (calderactl --serve llamacpp): unset quantizer, method, q_bits,
    # q_group_size become int, ldlq, 4, 32 (GGUF's Q4_0); the bundled model's 172-column
    # down_proj is refused by name, and left out with modules= it runs.
    calibration = f"{model_dir}/calibration.safetensors"
    with pytest.raises(caldera_client.InvalidJobError, match="down_proj has 172 input columns"):
        client.submit(model_dir, calibration, str(tmp_path / "o"), serve="llamacpp")
    job = client.submit(model_dir, calibration, str(tmp_path / "out"), serve="llamacpp",
                        modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj"])
    d = job.spec.decomposition
    assert (job.spec.serve, d.quantizer, d.method, d.q_bits, d.q_group_size) == (
        "llamacpp", "int", "ldlq", 4, 32)
    assert client.wait(job.name, timeout=120).state == jobs_pb2.SUCCEEDED


def test_cancel_and_wait_raise(client, model_dir, tmp_path):
    job = client.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "out"),
                        rank=8, iters=40, lplr_iters=10)
    cancelled = client.cancel(job.name)
    assert cancelled.state == jobs_pb2.CANCELLED
    with pytest.raises(caldera_client.JobCancelledError):
        client.wait(job.name, timeout=30)
    with pytest.raises(caldera_client.JobStateError, match="already ended"):
        client.cancel(job.name)
    assert not (tmp_path / "out" / "model.safetensors.index.json").exists()


def test_health_service_reports_serving(cluster):
    with grpc.insecure_channel(cluster.server) as channel:
        resp = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(),
                                                         timeout=5)
    assert resp.status == health_pb2.HealthCheckResponse.SERVING


def test_dashboard_queries_only_exposed_metrics(cluster, client, model_dir, tmp_path):
    # A job first, so that every labelled series has been touched.
    job = client.submit(model_dir, f"{model_dir}/calibration.safetensors", str(tmp_path / "out"),
                        **FAST)
    client.wait(job.name, timeout=120)
    exposed = set()
    for port in (cluster.metrics_port, cluster.worker_metrics_port):
        for line in cluster.scrape(port).splitlines():
            if line and not line.startswith("#"):
                exposed.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    dashboard = json.loads((REPO / "deploy" / "grafana" / "caldera-dashboard.json").read_text())
    queried = set()
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            queried.update(re.findall(r"\bcaldera_[a-z_]+", target["expr"]))
    assert len(queried) >= 10
    missing = sorted(queried - exposed)
    assert not missing, f"dashboard queries metrics nobody exposes: {missing}"
