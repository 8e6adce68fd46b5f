"""A real caldera-coordinator and caldera-worker on loopback, for pytest suites.

Used by client/python/tests and tests/deploy. Environment: CALDERA_BIN_DIR (the
build's bin/ with both binaries and calderactl; CTest sets it) and
CALDERA_FIXTURES_DIR (holds stories260K/; default the bundled models/ of the
checkout).
"""
import os
import socket
import subprocess
import urllib.request

import grpc
import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; run through scripts/test.sh or ctest")
    return value


def fixture_model_dir() -> str:
    """stories260K under CALDERA_FIXTURES_DIR, by default the bundled models/
    folder of the repo (as the C++ tests do)."""
    root = os.environ.get("CALDERA_FIXTURES_DIR") or os.path.join(
        os.path.dirname(__file__), "..", "..", "models")
    path = os.path.normpath(os.path.join(root, "stories260K"))
    assert os.path.exists(os.path.join(path, "model.safetensors")), (
        f"{path} is missing; set CALDERA_FIXTURES_DIR to the folder holding stories260K/")
    return path


class Cluster:
    """One coordinator (short leases) and one single-threaded worker."""

    def __init__(self, bin_dir: str, data_dir: str, coordinator_args=(), worker_args=(),
                 channel_credentials=None, host: str = "127.0.0.1"):
        """coordinator_args / worker_args: extra flags (tokens, TLS: docs/security.md);
        channel_credentials: grpc.ssl_channel_credentials for the readiness check of a TLS
        coordinator; host: the name clients dial (localhost matches the test certificates)."""
        self.bin_dir = bin_dir
        self.port = free_port()
        self.metrics_port = free_port()
        self.worker_metrics_port = free_port()
        self.server = f"{host}:{self.port}"
        self.procs = [subprocess.Popen([
            os.path.join(bin_dir, "caldera-coordinator"), "--listen", f"127.0.0.1:{self.port}",
            "--data-dir", data_dir, "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            "--lease-seconds", "5", "--heartbeat-seconds", "0.5", *coordinator_args])]
        self.procs.append(subprocess.Popen([
            os.path.join(bin_dir, "caldera-worker"), "--coordinator", self.server,
            "--threads", "1", "--poll-seconds", "1",
            "--metrics-listen", f"127.0.0.1:{self.worker_metrics_port}", *worker_args]))
        channel = (grpc.secure_channel(self.server, channel_credentials)
                   if channel_credentials is not None else grpc.insecure_channel(self.server))
        try:
            grpc.channel_ready_future(channel).result(timeout=30)
        except grpc.FutureTimeoutError:
            self.stop()
            raise
        finally:
            channel.close()

    def scrape(self, port: int) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            return r.read().decode()

    def stop(self):
        for p in reversed(self.procs):
            p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
