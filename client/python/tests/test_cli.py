"""`python -m caldera_client` against a real coordinator and worker: exit codes by
outcome, JSON output, and every submit flag reaching the coordinator's spec."""
import json
import os
import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[3]


def _cli(*args, timeout=180):
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "client" / "python")
    env.pop("CALDERA_TOKEN", None)
    return subprocess.run([sys.executable, "-m", "caldera_client", *args], env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_submit_wait_json_carries_every_setting(cluster, model_dir, tmp_path):
    r = _cli("submit", "--server", cluster.server, "--model", model_dir,
             "--calibration", f"{model_dir}/calibration.safetensors",
             "--out", str(tmp_path / "out"), "--method", "ldlq", "--quantizer", "uniform",
             "--q-bits", "4", "--q-group-size", "32", "--incoherence", "none",
             "--calibration-mode", "original", "--calibration-shards", "2",
             "--seed", "5", "--modules", "q_proj,k_proj", "--target-bits", "4.3",
             "--finetune-steps", "3", "--finetune-lr", "0.02", "--wait", "--json")
    assert r.returncode == 0, r.stderr
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    created, last = lines[0], lines[-1]["job"]
    assert created["state"] in ("QUEUED", "RUNNING")
    assert last["state"] == "SUCCEEDED"
    d = last["spec"]["decomposition"]
    assert (d["method"], d["quantizer"], d["q_bits"], d["q_group_size"], d["incoherence"],
            d["seed"]) == ("ldlq", "uniform", 4, 32, "none", "5")
    assert last["spec"]["calibration_mode"] == "original"
    assert last["spec"]["calibration_shards"] == 2
    assert last["spec"]["target_bits"] == 4.3
    assert (last["spec"]["finetune_steps"], last["spec"]["finetune_lr"]) == (3, 0.02)
    assert sorted(last["spec"]["modules"]) == ["k_proj", "q_proj"]
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    assert {m["name"].rsplit(".", 1)[-1] for m in report["matrices"]} == {"q_proj", "k_proj"}
    # A finetune task per block (original mode: on the original model's states).
    assert [b["layer"] for b in report["finetune"]] == sorted({m["layer"] for m in report["matrices"]})
    assert all(b["holdout_after"] <= b["holdout_before"] for b in report["finetune"])
    # --target-bits is a per-block average (a matrix may sit above it).
    assert all(m["setting"] for m in report["matrices"])
    blocks = {}
    for m in report["matrices"]:
        b = blocks.setdefault(m["layer"], [0.0, 0.0])
        b[0] += m["bits_per_param"] * m["rows"] * m["cols"]
        b[1] += m["rows"] * m["cols"]
    assert all(bits / params <= 4.3 + 1e-9 for bits, params in blocks.values()), blocks

    s = _cli("status", "--server", cluster.server, created["name"])
    assert s.returncode == 0, s.stderr
    assert s.stdout.startswith(f"{created['name']} SUCCEEDED")


def test_exit_codes_follow_calderactl(cluster, model_dir, tmp_path):
    bad = _cli("submit", "--server", cluster.server, "--model", model_dir,
               "--calibration", f"{model_dir}/calibration.safetensors",
               "--out", str(tmp_path / "o"), "--rank", "100")
    assert bad.returncode == 2
    assert "--rank 100 is larger than" in bad.stderr

    missing = _cli("status", "--server", cluster.server, "jobs/j-000000000000")
    assert missing.returncode == 2

    down = _cli("status", "--server", "127.0.0.1:1", "--timeout", "2", "jobs/x")
    assert down.returncode == 75, down.stderr

    slow = _cli("submit", "--server", cluster.server, "--model", model_dir,
                "--calibration", f"{model_dir}/calibration.safetensors",
                "--out", str(tmp_path / "slow"), "--rank", "8", "--iters", "40",
                "--lplr-iters", "10")
    assert slow.returncode == 0, slow.stderr
    name = slow.stdout.split()[0]
    cancel = _cli("cancel", "--server", cluster.server, name)
    assert cancel.returncode == 0, cancel.stderr
    waited = _cli("wait", "--server", cluster.server, name)
    assert waited.returncode == 4, waited.stdout + waited.stderr
    assert f"{name} CANCELLED" in waited.stdout
