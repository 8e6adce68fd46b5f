"""deploy/kubernetes: every manifest validated offline against the Kubernetes API
schemas (kubernetes-validate, pinned in scripts/python-test-requirements.txt),
CRD resources (ServiceMonitor, KEDA ScaledObject) checked structurally, and the
references between resources resolved (selectors, ports, ConfigMaps, probes).

Kustomize is not installable from Debian or PyPI, so render() below applies the
parts of Kustomize the manifests use: resources (files and directories),
namespace, and strategic-merge patches (lists of named items merged by name).
"""
import copy
import json
import pathlib

import kubernetes_validate
import pytest

from deploy_support import REPO, load_yaml_docs

K8S_VERSION = "1.37.0"
KUBE = REPO / "deploy" / "kubernetes"
CRD_KINDS = {"ServiceMonitor", "ScaledObject"}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding", "PersistentVolume"}
# Created by the operator or cert-manager (documented in base/configmap.yaml and
# docs/security.md), not by the manifests.
EXTERNAL_SECRETS = {"caldera-storage", "caldera-tls", "caldera-auth", "caldera-worker-token"}


def _merge(base, patch):
    if isinstance(base, dict) and isinstance(patch, dict):
        out = dict(base)
        for k, v in patch.items():
            out[k] = _merge(base[k], v) if k in base else copy.deepcopy(v)
        return out
    if (isinstance(base, list) and isinstance(patch, list) and base and patch
            and all(isinstance(x, dict) and "name" in x for x in base + patch)):
        out = [copy.deepcopy(x) for x in base]
        for item in patch:
            same = [i for i, x in enumerate(out) if x["name"] == item["name"]]
            if same:
                out[same[0]] = _merge(out[same[0]], item)
            else:
                out.append(copy.deepcopy(item))
        return out
    return copy.deepcopy(patch)


def render(directory: pathlib.Path) -> list:
    (kustomization,) = load_yaml_docs(directory / "kustomization.yaml")
    docs = []
    for res in kustomization.get("resources", []):
        path = (directory / res).resolve()
        assert path.exists(), f"{directory}/kustomization.yaml lists missing {res}"
        docs += render(path) if path.is_dir() else load_yaml_docs(path)
    for p in kustomization.get("patches", []):
        (patch,) = load_yaml_docs(directory / p["path"])
        targets = [d for d in docs if d["kind"] == patch["kind"]
                   and d["metadata"]["name"] == patch["metadata"]["name"]]
        assert len(targets) == 1, f"patch {p['path']} matches {len(targets)} resources"
        docs[docs.index(targets[0])] = _merge(targets[0], patch)
    if "namespace" in kustomization:
        for d in docs:
            if d["kind"] not in CLUSTER_SCOPED:
                d["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def rendered_sets():
    return {
        "overlays/cpu": render(KUBE / "overlays" / "cpu"),
        "overlays/gpu": render(KUBE / "overlays" / "gpu"),
        "batch": load_yaml_docs(KUBE / "batch" / "indexed-job.yaml"),
    }


def by_kind(docs, kind):
    return [d for d in docs if d["kind"] == kind]


def one(docs, kind, name):
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind}/{name}, found {len(found)}"
    return found[0]


def pod_spec(workload):
    return workload["spec"]["template"]["spec"]


def labels_match(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


@pytest.mark.parametrize("name", ["overlays/cpu", "overlays/gpu", "batch"])
def test_manifests_validate_against_kubernetes_schemas(name):
    docs = rendered_sets()[name]
    assert docs, name
    validated = 0
    for doc in docs:
        if doc["kind"] in CRD_KINDS:
            continue  # no upstream schema; checked in test_crd_resources
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)
        validated += 1
    assert validated >= (6 if name.startswith("overlays") else 2)


def test_validator_rejects_a_broken_manifest():
    statefulset = one(rendered_sets()["overlays/cpu"], "StatefulSet", "caldera-coordinator")
    broken = copy.deepcopy(statefulset)
    broken["spec"]["replicas"] = "one"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSION, strict=True)
    unknown_field = copy.deepcopy(statefulset)
    pod_spec(unknown_field)["containers"][0]["livenessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(unknown_field, K8S_VERSION, strict=True)


@pytest.mark.parametrize("name", ["overlays/cpu", "overlays/gpu", "batch"])
def test_references_resolve(name):
    docs = rendered_sets()[name]
    workloads = [d for d in docs if d["kind"] in ("StatefulSet", "Deployment", "Job")]
    config_maps = {d["metadata"]["name"] for d in by_kind(docs, "ConfigMap")}
    if name == "batch":  # the batch Job reuses the base ConfigMap
        config_maps |= {d["metadata"]["name"] for d in by_kind(render(KUBE / "base"), "ConfigMap")}
    for w in workloads:
        spec = pod_spec(w)
        volumes = {v["name"]: v for v in spec.get("volumes", [])}
        claims = {c["metadata"]["name"] for c in w["spec"].get("volumeClaimTemplates", [])}
        for v in volumes.values():
            if "configMap" in v:
                assert v["configMap"]["name"] in config_maps, v
            if "secret" in v:
                assert v["secret"]["secretName"] in EXTERNAL_SECRETS, v
        for c in spec["containers"]:
            for ref in c.get("envFrom", []):
                if "configMapRef" in ref:
                    assert ref["configMapRef"]["name"] in config_maps, ref
                if "secretRef" in ref:
                    assert ref["secretRef"]["name"] in EXTERNAL_SECRETS, ref
            for m in c.get("volumeMounts", []):
                assert m["name"] in volumes or m["name"] in claims, m
        if w["kind"] != "Job":
            assert labels_match(w["spec"]["selector"]["matchLabels"],
                                w["spec"]["template"]["metadata"]["labels"])
    for svc in by_kind(docs, "Service"):
        pods = [w for w in workloads
                if labels_match(svc["spec"]["selector"], w["spec"]["template"]["metadata"]["labels"])]
        assert pods, f"Service {svc['metadata']['name']} selects no workload"
        port_names = {p["name"] for w in pods for c in pod_spec(w)["containers"]
                      for p in c.get("ports", [])}
        for port in svc["spec"]["ports"]:
            assert port["targetPort"] in port_names, (svc["metadata"]["name"], port)
    for pdb in by_kind(docs, "PodDisruptionBudget"):
        assert any(labels_match(pdb["spec"]["selector"]["matchLabels"],
                                w["spec"]["template"]["metadata"]["labels"]) for w in workloads)


def test_coordinator_statefulset_probes_state_and_config():
    docs = rendered_sets()["overlays/cpu"]
    sts = one(docs, "StatefulSet", "caldera-coordinator")
    (container,) = pod_spec(sts)["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    grpc_port, health_port = ports["grpc"], ports["health"]
    for probe in ("livenessProbe", "readinessProbe"):
        # grpc.health.v1 on the plaintext health-only port (kubelet cannot speak TLS).
        assert container[probe]["grpc"]["port"] == health_port, probe
    (claim,) = sts["spec"]["volumeClaimTemplates"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    config = json.loads(one(docs, "ConfigMap", "caldera-config")["data"]["coordinator.json"])
    assert mounts[claim["metadata"]["name"]] == config["data_dir"]
    assert config["listen"].endswith(f":{grpc_port}")
    assert config["health_listen"].endswith(f":{health_port}")
    # TLS and tokens by default, from mounted Secrets (docs/security.md).
    for key in ("auth_tokens", "tls_cert", "tls_key"):
        assert any(config[key].startswith(m + "/") for m in mounts.values()), key
    worker = pod_spec(one(docs, "Deployment", "caldera-worker"))["containers"][0]
    assert "--tls-ca" in worker["args"] and "--token-file" in worker["args"]
    service = one(docs, "Service", "caldera-coordinator")
    assert sts["spec"]["serviceName"] == service["metadata"]["name"]
    assert sts["spec"]["replicas"] == 1  # one coordinator per state volume
    assert all(d["metadata"]["namespace"] == "caldera" for d in docs if d["kind"] != "Namespace")


@pytest.mark.parametrize("name", ["overlays/cpu", "overlays/gpu"])
def test_coordinator_and_workers_confine_storage_to_the_bucket(name):
    """--allow-root s3://caldera on the coordinator and every worker
    (docs/security.md)."""
    docs = rendered_sets()[name]
    for kind, workload in (("StatefulSet", "caldera-coordinator"), ("Deployment", "caldera-worker")):
        (container,) = pod_spec(one(docs, kind, workload))["containers"]
        args = container["args"]
        assert "--allow-root" in args, (name, workload)
        assert args[args.index("--allow-root") + 1] == "s3://caldera", (name, workload)


def test_gpu_overlay_requests_gpus_on_gpu_nodes_only():
    cpu = pod_spec(one(rendered_sets()["overlays/cpu"], "Deployment", "caldera-worker"))
    gpu = pod_spec(one(rendered_sets()["overlays/gpu"], "Deployment", "caldera-worker"))
    (gpu_worker,) = gpu["containers"]
    assert gpu_worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert "worker-cuda" in gpu_worker["image"]
    assert gpu["nodeSelector"]
    assert any(t["key"] == "nvidia.com/gpu" for t in gpu["tolerations"])
    # The patch kept what it did not mention (requests, env, ports).
    assert gpu_worker["envFrom"] == cpu["containers"][0]["envFrom"]
    assert gpu_worker["resources"]["requests"] == cpu["containers"][0]["resources"]["requests"]
    (cpu_worker,) = cpu["containers"]
    assert "nvidia.com/gpu" not in cpu_worker["resources"].get("limits", {})
    assert "nodeSelector" not in cpu and "worker-cpu" in cpu_worker["image"]


def test_crd_resources(exposed_metrics):
    docs = rendered_sets()["overlays/cpu"]
    monitor = one(docs, "ServiceMonitor", "caldera")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    selected = [s for s in by_kind(docs, "Service")
                if labels_match(monitor["spec"]["selector"]["matchLabels"], s["metadata"]["labels"])]
    endpoint_ports = {e["port"] for e in monitor["spec"]["endpoints"]}
    components = {s["metadata"]["labels"]["app.kubernetes.io/component"] for s in selected
                  if endpoint_ports & {p["name"] for p in s["spec"]["ports"]}}
    assert components == {"coordinator", "worker"}

    scaled = one(docs, "ScaledObject", "caldera-worker")
    assert scaled["apiVersion"] == "keda.sh/v1alpha1"
    one(docs, "Deployment", scaled["spec"]["scaleTargetRef"]["name"])
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "prometheus"
    assert "caldera_queue_depth" in trigger["metadata"]["query"]
    assert "caldera_queue_depth" in exposed_metrics  # the metric really exists
    float(trigger["metadata"]["threshold"])


def test_indexed_job_fails_fast_on_permanent_exit_codes(bin_dir, tmp_path):
    import subprocess
    docs = rendered_sets()["batch"]
    job = by_kind(docs, "Job")[0]
    assert job["spec"]["completionMode"] == "Indexed"
    (container,) = pod_spec(job)["containers"]
    (rule,) = job["spec"]["podFailurePolicy"]["rules"]
    assert rule["action"] == "FailJob"
    assert rule["onExitCodes"]["containerName"] == container["name"]
    assert set(rule["onExitCodes"]["values"]) == {2, 3, 4}  # 75 and crashes are retried
    # Run the container's script with the real calderactl: a model that does not
    # exist must end with exit 2, which the rule above turns into a failed Job.
    models = tmp_path / "models.txt"
    models.write_text(f"{tmp_path}/no-such-model\n")
    script = container["args"][0].replace("/etc/caldera-batch/models.txt", str(models))
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "JOB_COMPLETION_INDEX": "0"}
    result = subprocess.run(["/bin/sh", "-c", script], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert "no-such-model" in result.stderr
