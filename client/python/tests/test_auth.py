"""Tokens, roles and TLS through the Python client and calderactl (docs/security.md):
a coordinator with --auth-tokens and a TLS certificate made by
tests/tools/make_test_certs.sh, a worker with a worker token."""
import hashlib
import os
import pathlib
import subprocess
import sys

import grpc
import pytest

import caldera_client
from caldera.v1 import jobs_pb2

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "tests" / "tools"))
from caldera_cluster import Cluster, required_env  # noqa: E402

FAST = dict(rank=8, iters=1, lplr_iters=1, seed=3)
TOKENS = {"viewer-tok": ("viewer", "vera"), "alice-tok": ("submitter", "alice"),
          "bob-tok": ("submitter", "bob"), "admin-tok": ("admin", "root"),
          "worker-tok": ("worker", "workers")}


@pytest.fixture(scope="module")
def certs(tmp_path_factory):
    d = tmp_path_factory.mktemp("certs")
    subprocess.run(["bash", str(REPO / "tests" / "tools" / "make_test_certs.sh"), str(d)],
                   check=True, capture_output=True)
    return d


@pytest.fixture(scope="module")
def secure(certs, tmp_path_factory):
    d = tmp_path_factory.mktemp("secure")
    tokens = d / "tokens"
    tokens.write_text("".join(f"{hashlib.sha256(t.encode()).hexdigest()}  {role}  {name}\n"
                              for t, (role, name) in TOKENS.items()))
    worker_token = d / "worker-token"
    worker_token.write_text("worker-tok\n")
    ca = (certs / "ca.pem").read_bytes()
    c = Cluster(required_env("CALDERA_BIN_DIR"), str(d / "state"),
                coordinator_args=["--auth-tokens", str(tokens),
                                  "--tls-cert", str(certs / "server.pem"),
                                  "--tls-key", str(certs / "server.key")],
                worker_args=["--token-file", str(worker_token),
                             "--tls-ca", str(certs / "ca.pem")],
                channel_credentials=grpc.ssl_channel_credentials(root_certificates=ca),
                host="localhost")
    try:
        yield c
    finally:
        c.stop()


def client(secure, certs, token=None, ca="ca.pem"):
    return caldera_client.Client(secure.server, token=token, tls_ca=str(certs / ca), timeout=10)


def test_roles_and_owners(secure, certs, model_dir, tmp_path):
    with client(secure, certs) as anonymous:
        with pytest.raises(caldera_client.Unauthenticated, match="bearer token"):
            list(anonymous.list())
    with client(secure, certs, token="alice-tok") as alice, \
            client(secure, certs, token="bob-tok") as bob, \
            client(secure, certs, token="viewer-tok") as viewer:
        job = alice.submit(model_dir, f"{model_dir}/calibration.safetensors",
                           str(tmp_path / "out"), request_id="same", **FAST)
        assert job.owner == "alice"
        # Bob's request id "same" is his own (another job, not alice's).
        other = bob.submit(model_dir, f"{model_dir}/calibration.safetensors",
                           str(tmp_path / "out-bob"), request_id="same", **FAST)
        assert other.name != job.name
        with pytest.raises(caldera_client.JobNotFoundError):
            bob.get(job.name)
        with pytest.raises(caldera_client.JobNotFoundError):
            bob.cancel(job.name)
        assert [j.name for j in bob.list()] == [other.name]
        assert viewer.get(job.name).name == job.name
        with pytest.raises(caldera_client.PermissionDenied, match="viewer"):
            viewer.cancel(job.name)
        # The worker (token + TLS) runs both jobs.
        assert alice.wait(job.name, timeout=120).state == jobs_pb2.SUCCEEDED
        assert bob.wait(other.name, timeout=120).state == jobs_pb2.SUCCEEDED


def test_a_worker_token_cannot_use_the_job_api(secure, certs):
    with client(secure, certs, token="worker-tok") as worker:
        with pytest.raises(caldera_client.PermissionDenied):
            list(worker.list())


def test_a_certificate_from_another_ca_is_refused(secure, certs):
    with client(secure, certs, token="admin-tok", ca="other-ca.pem") as c:
        with pytest.raises(caldera_client.UnavailableError):
            list(c.list())


def test_calderactl_exit_codes_and_messages(secure, certs, tmp_path):
    ctl = os.path.join(required_env("CALDERA_BIN_DIR"), "calderactl")
    env = {k: v for k, v in os.environ.items() if k != "CALDERA_TOKEN"}
    base = [ctl, "list", "--server", secure.server, "--tls-ca", str(certs / "ca.pem")]
    r = subprocess.run(base, capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "not authenticated" in r.stderr
    token = tmp_path / "viewer-token"
    token.write_text("viewer-tok\n")
    r = subprocess.run(base + ["--token-file", str(token)], capture_output=True, text=True,
                       env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([ctl, "cancel", "jobs/j-000000000000", "--server", secure.server,
                        "--tls-ca", str(certs / "ca.pem")], capture_output=True, text=True,
                       env={**env, "CALDERA_TOKEN": "viewer-tok"}, timeout=60)
    assert r.returncode == 2, r.stderr
    assert "permission denied" in r.stderr


def _reflection_call(channel):
    """One ServerReflectionInfo request (list_services) as raw bytes: no reflection
    package is needed to see whether the service is there."""
    call = channel.stream_stream(
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        request_serializer=lambda b: b, response_deserializer=lambda b: b)
    return next(iter(call(iter([b"\x3a\x00"]), timeout=10)))


def test_health_is_open_and_reflection_is_off(secure, certs):
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    creds = grpc.ssl_channel_credentials(root_certificates=(certs / "ca.pem").read_bytes())
    with grpc.secure_channel(secure.server, creds) as ch:  # no token
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as e:
            _reflection_call(ch)
        assert e.value.code() == grpc.StatusCode.UNIMPLEMENTED


def _start(args, tmp_path):
    from caldera_cluster import free_port
    port = free_port()
    proc = subprocess.Popen(
        [os.path.join(required_env("CALDERA_BIN_DIR"), "caldera-coordinator"),
         "--data-dir", str(tmp_path / "state"), "--listen", f"{args.pop(0)}:{port}", *args],
        stderr=subprocess.PIPE, text=True)
    return proc, port


def test_non_loopback_without_tls_and_tokens_needs_insecure(tmp_path):
    proc, _ = _start(["0.0.0.0"], tmp_path)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2, err
    assert "--insecure" in err and "not a loopback address" in err
    from caldera_cluster import free_port
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    health_port = free_port()
    proc, port = _start(["0.0.0.0", "--insecure", "--reflection",
                         "--health-listen", f"127.0.0.1:{health_port}"], tmp_path)
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
            grpc.channel_ready_future(ch).result(timeout=30)
            assert _reflection_call(ch)  # --reflection turns it on
        # --health-listen: grpc.health.v1 alone (for kubelet probes), nothing else.
        with grpc.insecure_channel(f"127.0.0.1:{health_port}") as ch:
            reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                         timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            with pytest.raises(caldera_client.CalderaError):
                list(caldera_client.Client(f"127.0.0.1:{health_port}", channel=ch).list())
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "WARNING: --insecure" in err
