"""Fixtures of the client suite: a real coordinator and worker on loopback
(tests/tools/caldera_cluster.py) and a Client connected to it."""
import os
import pathlib
import sys
import tempfile

import pytest

REPO = pathlib.Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO / "client" / "python"))
sys.path.insert(0, str(REPO / "tests" / "tools"))

import caldera_client  # noqa: E402
from caldera_cluster import Cluster, fixture_model_dir, required_env  # noqa: E402


@pytest.fixture(scope="session")
def model_dir() -> str:
    return fixture_model_dir()


@pytest.fixture(scope="session")
def cluster():
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(required_env("CALDERA_BIN_DIR"), os.path.join(tmp, "state"))
        try:
            yield c
        finally:
            c.stop()


@pytest.fixture()
def client(cluster):
    with caldera_client.Client(cluster.server) as c:
        yield c
