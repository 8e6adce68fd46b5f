"""docker-compose.yml: parsed and validated by a compose parser (docker-compose
1.29 from Debian, `docker-compose config`, which needs no Docker daemon), and
the wiring between its services checked: bucket creation, the coordinator's
state volume, workers pointing at the coordinator, Prometheus scraping every
metrics port, Grafana provisioned with the dashboard and the data source."""
import json
import pathlib
import shutil
import subprocess

import pytest
import yaml

from deploy_support import REPO, load_yaml_docs

COMPOSE = REPO / "docker-compose.yml"


def compose_config(path: pathlib.Path) -> subprocess.CompletedProcess:
    exe = shutil.which("docker-compose")
    assert exe, "docker-compose is missing: scripts/setup.sh installs it (scripts/debian-test-packages.txt)"
    return subprocess.run([exe, "--project-directory", str(REPO), "-f", str(path), "config"],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture(scope="module")
def config() -> dict:
    result = compose_config(COMPOSE)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_parser_rejects_a_broken_file(tmp_path):
    broken = yaml.safe_load(COMPOSE.read_text())
    broken["services"]["coordinator"]["depends_on"] = {"minio-init": {"condition": "whenever"}}
    path = tmp_path / "docker-compose.yml"
    path.write_text(yaml.safe_dump(broken))
    result = compose_config(path)
    assert result.returncode != 0
    assert "condition" in result.stderr or "whenever" in result.stderr, result.stderr


def _flag(command: list, name: str) -> str:
    return command[command.index(name) + 1]


def test_services_are_wired(config):
    services = config["services"]
    assert {"minio", "minio-init", "coordinator", "worker-1", "worker-2", "prometheus",
            "grafana"} <= set(services)
    # The bucket is created at start, before the coordinator starts.
    init = " ".join(services["minio-init"]["command"])
    assert "mc mb" in init and "local/caldera" in init
    assert services["coordinator"]["depends_on"]["minio-init"]["condition"] == \
        "service_completed_successfully"
    # Credentials: the services use MinIO's root user.
    minio_env = services["minio"]["environment"]
    for name in ("coordinator", "worker-1", "worker-2"):
        env = services[name]["environment"]
        assert env["AWS_ACCESS_KEY_ID"] == minio_env["MINIO_ROOT_USER"]
        assert env["AWS_SECRET_ACCESS_KEY"] == minio_env["MINIO_ROOT_PASSWORD"]
        assert env["AWS_ENDPOINT_URL"] == "http://minio:9000"
    # The coordinator's state lives on a named volume at its --data-dir.
    coord = services["coordinator"]
    data_dir = _flag(coord["command"], "--data-dir")
    assert any(v.split(":")[1] == data_dir and v.split(":")[0] in config["volumes"]
               for v in coord["volumes"])
    grpc_port = _flag(coord["command"], "--listen").rsplit(":", 1)[1]
    for name in ("worker-1", "worker-2"):
        assert _flag(services[name]["command"], "--coordinator") == f"coordinator:{grpc_port}"


def test_storage_is_confined_to_the_bucket(config):
    """Coordinator and workers pass --allow-root for the data bucket that
    minio-init creates (docs/security.md)."""
    services = config["services"]
    assert "local/caldera" in " ".join(services["minio-init"]["command"])
    for name in ("coordinator", "worker-1", "worker-2"):
        assert _flag(services[name]["command"], "--allow-root") == "s3://caldera", name


def test_prometheus_scrapes_every_metrics_port(config):
    services = config["services"]
    want = set()
    for name in ("coordinator", "worker-1", "worker-2"):
        port = _flag(services[name]["command"], "--metrics-listen").rsplit(":", 1)[1]
        want.add(f"{name}:{port}")
    mount = next(v for v in services["prometheus"]["volumes"]
                 if v.split(":")[1] == "/etc/prometheus/prometheus.yml")
    (prom,) = load_yaml_docs(pathlib.Path(mount.split(":")[0]))
    targets = {t for job in prom["scrape_configs"] for sc in job["static_configs"]
               for t in sc["targets"]}
    assert targets == want


def test_grafana_is_provisioned_with_the_dashboard(config):
    mounts = {v.split(":")[1]: pathlib.Path(v.split(":")[0])
              for v in config["services"]["grafana"]["volumes"]}
    provisioning = mounts["/etc/grafana/provisioning"]
    (datasources,) = load_yaml_docs(provisioning / "datasources" / "prometheus.yml")
    (source,) = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    (dashboards,) = load_yaml_docs(provisioning / "dashboards" / "caldera.yml")
    folder = dashboards["providers"][0]["options"]["path"]
    provisioned = [p for target, p in mounts.items() if target.startswith(folder + "/")]
    assert provisioned, f"nothing mounted under {folder}"
    for path in provisioned:
        dashboard = json.loads(path.read_text())
        assert dashboard["panels"]
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["query"] == source["type"]
