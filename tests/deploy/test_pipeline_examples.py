"""deploy/examples: the Argo Workflows template and the Kubeflow Pipelines
component, checked for structure and exit-code mapping, and their commands run
with the real calderactl against a real coordinator and worker on loopback:
a good job succeeds, a bad one ends with 2 (no retry), a coordinator that is not
there ends with 75 (retry), and a retry re-attaches to the same job."""
import os
import pathlib
import re
import subprocess
import uuid

import pytest

from deploy_support import REPO, load_yaml_docs
from caldera_cluster import free_port

EXAMPLES = REPO / "deploy" / "examples"
FAST = {"rank": "8", "iters": "1", "lplr-iters": "1", "seed": "3"}


def created_job(stderr: str) -> str:
    match = re.search(r"submit: (\S+) created", stderr)
    assert match, stderr
    return match.group(1)


# --- Argo ---------------------------------------------------------------------

class ArgoTemplate:
    def __init__(self):
        (self.doc,) = load_yaml_docs(EXAMPLES / "argo" / "caldera-compress-workflowtemplate.yaml")
        spec = self.doc["spec"]
        self.parameters = {p["name"]: p.get("value") for p in spec["arguments"]["parameters"]}
        (self.step,) = [t for t in spec["templates"] if t["name"] == spec["entrypoint"]]

    def should_retry(self, status: str, exit_code: int) -> bool:
        """Evaluates the retryStrategy expression the way Argo's expr does for
        this grammar (==, and, or, asInt)."""
        class LastRetry:
            pass
        last = LastRetry()
        last.status, last.exitCode = status, str(exit_code)
        expr = self.step["retryStrategy"]["expression"]
        return bool(eval(expr, {"__builtins__": {}}, {"asInt": int, "lastRetry": last}))

    def command(self, workflow_uid: str, **overrides) -> list:
        params = dict(self.parameters, **overrides)
        missing = [k for k, v in params.items() if v is None]
        assert not missing, f"parameters without a value: {missing}"
        inputs = {p["name"]: p["value"] for p in self.step["inputs"]["parameters"]}

        def render(text: str) -> str:
            text = re.sub(r"\{\{inputs\.parameters\.([\w-]+)\}\}",
                          lambda m: inputs[m.group(1)], text)
            text = re.sub(r"\{\{workflow\.parameters\.([\w-]+)\}\}",
                          lambda m: params[m.group(1)], text)
            text = text.replace("{{workflow.uid}}", workflow_uid)
            assert "{{" not in text, f"unresolved placeholder in {text}"
            return text

        container = self.step["container"]
        return [render(a) for a in container["command"] + container["args"]]


def test_argo_template_structure():
    t = ArgoTemplate()
    assert t.doc["apiVersion"] == "argoproj.io/v1alpha1" and t.doc["kind"] == "WorkflowTemplate"
    assert {"model", "calibration", "out"} <= set(t.parameters)
    assert t.step["container"]["command"] == ["calderactl"]
    args = t.step["container"]["args"]
    assert args[:2] == ["submit", "--wait"]
    assert "--request-id={{workflow.uid}}" in args
    assert int(t.step["retryStrategy"]["limit"]) >= 1
    assert t.step["retryStrategy"]["backoff"]["duration"]


def test_argo_retry_expression_maps_exit_codes():
    t = ArgoTemplate()
    assert t.should_retry("Failed", 75)
    for code in (2, 3, 4, 1, 134):
        assert not t.should_retry("Failed", code), code
    assert t.should_retry("Error", 137)  # pod-level error: eviction, node loss


def test_argo_command_against_a_real_coordinator(bin_dir, cluster, model_dir, tmp_path):
    t = ArgoTemplate()
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}")
    uid = str(uuid.uuid4())
    good = t.command(uid, server=cluster.server, model=model_dir,
                     calibration=f"{model_dir}/calibration.safetensors",
                     out=str(tmp_path / "out"), **FAST)
    first = subprocess.run(good, env=env, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    assert not t.should_retry("Succeeded", first.returncode)
    assert (tmp_path / "out" / "report.json").exists()
    # A retried step (same workflow uid) re-attaches to the same job.
    again = subprocess.run(good, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert created_job(again.stderr) == created_job(first.stderr)

    bad = t.command(str(uuid.uuid4()), server=cluster.server, model=str(tmp_path / "nothing"),
                    calibration=str(tmp_path / "nothing.safetensors"), out=str(tmp_path / "o2"),
                    **FAST)
    result = subprocess.run(bad, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert not t.should_retry("Failed", result.returncode)

    down = t.command(str(uuid.uuid4()), server=f"127.0.0.1:{free_port()}", model=model_dir,
                     calibration=f"{model_dir}/calibration.safetensors",
                     out=str(tmp_path / "o3"), **FAST)
    result = subprocess.run(down, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 75, result.stderr
    assert t.should_retry("Failed", result.returncode)


# --- Kubeflow -------------------------------------------------------------------

class KubeflowComponent:
    def __init__(self):
        (self.doc,) = load_yaml_docs(EXAMPLES / "kubeflow" / "caldera-compress-component.yaml")
        self.inputs = {i["name"]: i for i in self.doc["inputs"]}
        self.outputs = {o["name"] for o in self.doc["outputs"]}
        container = self.doc["implementation"]["container"]
        assert container["command"][:2] == ["sh", "-c"]
        self.script = container["command"][2]
        self.placeholders = container["command"][3:]

    def run(self, bin_path: str, tmp_path: pathlib.Path, env_extra=None, **values):
        """Runs the component's command as KFP would, with `values` for inputs."""
        args, outputs = [], {}
        for p in self.placeholders:
            if "inputValue" in p:
                name = p["inputValue"]
                value = values.get(name, self.inputs[name].get("default"))
                assert value is not None, f"input {name} needs a value"
                args.append(str(value))
            else:
                name = p["outputPath"]
                outputs[name] = tmp_path / "outputs" / name / "data"
                args.append(str(outputs[name]))
        env = dict(os.environ, PATH=f"{bin_path}:{os.environ['PATH']}", **(env_extra or {}))
        result = subprocess.run(["sh", "-c", self.script, *args], env=env, capture_output=True,
                                text=True, timeout=300)
        return result, outputs


def test_kubeflow_component_structure():
    c = KubeflowComponent()
    used = {p.get("inputValue") for p in c.placeholders} - {None}
    assert used == set(c.inputs), "every input is passed to the command, and only those"
    assert {p["outputPath"] for p in c.placeholders if "outputPath" in p} == c.outputs
    for required in ("model", "calibration", "out", "request_id"):
        assert "default" not in c.inputs[required]
    for name, spec in c.inputs.items():
        if spec.get("type") == "Integer" and "default" in spec:
            int(spec["default"])


@pytest.fixture()
def fake_calderactl(tmp_path):
    """A calderactl that exits with the codes listed in codes.txt, one per call,
    and records its arguments."""
    bin_path = tmp_path / "fake-bin"
    bin_path.mkdir()
    exe = bin_path / "calderactl"
    exe.write_text('#!/bin/sh\necho "$*" >> "$FAKE_DIR/calls.txt"\n'
                   'code=$(head -n 1 "$FAKE_DIR/codes.txt")\n'
                   'sed -i 1d "$FAKE_DIR/codes.txt"\nexit "$code"\n')
    exe.chmod(0o755)

    def with_codes(*codes):
        (tmp_path / "codes.txt").write_text("".join(f"{c}\n" for c in codes))
        (tmp_path / "calls.txt").write_text("")
        return str(bin_path), {"FAKE_DIR": str(tmp_path), "CALDERA_RETRY_DELAY_SECONDS": "0"}

    def calls():
        return (tmp_path / "calls.txt").read_text().splitlines()

    return with_codes, calls


JOB = dict(model="s3://b/m", calibration="s3://b/m/cal.safetensors", out="s3://b/o",
           request_id="run-1")


@pytest.mark.parametrize("codes,want_rc,want_calls", [
    ((0,), 0, 1),
    ((75, 75, 0), 0, 3),
    ((2,), 2, 1),
    ((3,), 3, 1),
    ((4,), 4, 1),
    ((1,), 1, 1),
    ((75, 75, 75, 75), 75, 3),  # max_unavailable_retries=2: first try + 2 retries
])
def test_kubeflow_component_maps_exit_codes(fake_calderactl, tmp_path, codes, want_rc, want_calls):
    with_codes, calls = fake_calderactl
    bin_path, env = with_codes(*codes)
    c = KubeflowComponent()
    result, outputs = c.run(bin_path, tmp_path, env, max_unavailable_retries=2, **JOB)
    assert result.returncode == want_rc, result.stderr
    made = calls()
    assert len(made) == want_calls
    assert all("--request-id run-1" in call for call in made)  # every try: the same job
    if want_rc == 0:
        assert outputs["checkpoint"].read_text() == JOB["out"]
    else:
        assert not outputs["checkpoint"].exists()


def test_kubeflow_component_against_a_real_coordinator(bin_dir, cluster, model_dir, tmp_path):
    c = KubeflowComponent()
    out = tmp_path / "out"
    result, outputs = c.run(str(bin_dir), tmp_path, server=cluster.server, model=model_dir,
                            calibration=f"{model_dir}/calibration.safetensors", out=str(out),
                            request_id=str(uuid.uuid4()), rank=8, iters=1, lplr_iters=1, seed=3)
    assert result.returncode == 0, result.stderr
    assert outputs["checkpoint"].read_text() == str(out)
    assert (out / "report.json").exists()

    result, _ = c.run(str(bin_dir), tmp_path / "bad", server=cluster.server, model=model_dir,
                      calibration=f"{model_dir}/calibration.safetensors", out=str(tmp_path / "o2"),
                      request_id=str(uuid.uuid4()), rank=100000)
    assert result.returncode == 2, result.stderr
    assert "not retried" in result.stderr

    result, _ = c.run(str(bin_dir), tmp_path / "down", {"CALDERA_RETRY_DELAY_SECONDS": "0"},
                      server=f"127.0.0.1:{free_port()}", model=model_dir,
                      calibration=f"{model_dir}/calibration.safetensors",
                      out=str(tmp_path / "o3"), request_id=str(uuid.uuid4()),
                      max_unavailable_retries=1)
    assert result.returncode == 75, result.stderr
    assert "retry 1/1" in result.stderr
