"""A real caldera-coordinator and caldera-worker on loopback for the client tests.

Environment: CALDERA_BIN_DIR (the build's bin/ with both binaries) and
CALDERA_FIXTURES_DIR (holds stories260K/); scripts/test.sh and CTest set both.
"""
import os
import pathlib
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

import grpc  # noqa: E402

import caldera_client  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _required_env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set; run through scripts/test.sh or ctest")
    return value


class Cluster:
    def __init__(self, bin_dir: str, data_dir: str):
        self.port = _free_port()
        self.metrics_port = _free_port()
        self.worker_metrics_port = _free_port()
        self.server = f"127.0.0.1:{self.port}"
        self.procs = [subprocess.Popen([
            os.path.join(bin_dir, "caldera-coordinator"), "--listen", self.server,
            "--data-dir", data_dir, "--metrics-listen", f"127.0.0.1:{self.metrics_port}",
            "--lease-seconds", "5", "--heartbeat-seconds", "0.5"])]
        self.procs.append(subprocess.Popen([
            os.path.join(bin_dir, "caldera-worker"), "--coordinator", self.server,
            "--threads", "1", "--poll-seconds", "1",
            "--metrics-listen", f"127.0.0.1:{self.worker_metrics_port}"]))
        channel = grpc.insecure_channel(self.server)
        grpc.channel_ready_future(channel).result(timeout=30)
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


@pytest.fixture(scope="session")
def model_dir() -> str:
    path = os.path.join(_required_env("CALDERA_FIXTURES_DIR"), "stories260K")
    assert os.path.exists(os.path.join(path, "model.safetensors")), path
    return path


@pytest.fixture(scope="session")
def cluster():
    bin_dir = _required_env("CALDERA_BIN_DIR")
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(bin_dir, os.path.join(tmp, "state"))
        try:
            yield c
        finally:
            c.stop()


@pytest.fixture()
def client(cluster):
    with caldera_client.Client(cluster.server) as c:
        yield c
