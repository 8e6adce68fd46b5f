#!/usr/bin/env python3
"""Golden outputs of `calderactl compress`: the bytes a refactor must not change.

Compresses the bundled stories260K fixture in three settings (CALDERA, LDLQ with
the uniform quantizer, CALDERA + residual TT-LoRA on two modules) and compares the
SHA-256 of every output file with tests/golden/compress-stories260K.json. report.json
is hashed after dropping its time fields (they measure the run, not the result).

Numerics are pinned so the bytes do not depend on the machine: one BLAS thread and
OpenBLAS's Haswell kernels (OPENBLAS_CORETYPE; any x86-64 with AVX2). Our own E8P
kernels give the same codes on every instruction set (tests/unit/quant).

When an output change is intended (a better quantizer, a format change), rerun with
--update and say in the commit why the bytes changed.

  golden_output_test.py CALDERACTL [--update]
"""
import hashlib
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "compress-stories260K.json")
CASES = {
    "caldera": ["--rank", "8", "--iters", "2", "--lplr-iters", "2"],
    "ldlq-uniform": ["--method", "ldlq", "--quantizer", "uniform", "--q-bits", "3"],
    "ttlora": ["--rank", "4", "--iters", "1", "--lplr-iters", "1", "--ttlora-rank", "2",
               "--ttlora-init", "residual", "--modules", "q_proj,down_proj"],
}


def strip_times(o):
    if isinstance(o, dict):
        return {k: strip_times(v) for k, v in o.items() if "seconds" not in k}
    if isinstance(o, list):
        return [strip_times(v) for v in o]
    return o


def digest_dir(path):
    out = {}
    for root, _, files in os.walk(path):
        for f in files:
            full = os.path.join(root, f)
            rel = os.path.relpath(full, path)
            with open(full, "rb") as fh:
                data = fh.read()
            if rel == "report.json":
                data = json.dumps(strip_times(json.loads(data)), sort_keys=True).encode()
            out[rel] = hashlib.sha256(data).hexdigest()
    return dict(sorted(out.items()))


def main():
    calderactl = sys.argv[1]
    update = "--update" in sys.argv[2:]
    fixtures = os.environ.get("CALDERA_FIXTURES_DIR",
                              os.path.join(HERE, "..", "..", "models"))
    model = os.path.join(fixtures, "stories260K")
    env = dict(os.environ, OPENBLAS_NUM_THREADS="1", OPENBLAS_CORETYPE="Haswell")
    got = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, flags in CASES.items():
            out = os.path.join(tmp, name)
            cmd = [calderactl, "compress", "--model", model, "--calibration",
                   os.path.join(model, "calibration.safetensors"), "--out", out,
                   "--workers", "2", "--threads", "1"] + flags
            r = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if r.returncode != 0:
                print(f"FAIL {name}: calderactl compress exited {r.returncode}\n{r.stderr[-2000:]}")
                return 1
            got[name] = digest_dir(out)
    if update:
        with open(GOLDEN, "w") as fh:
            json.dump(got, fh, indent=1, sort_keys=True)
            fh.write("\n")
        print(f"golden hashes written to {GOLDEN}")
        return 0
    with open(GOLDEN) as fh:
        want = json.load(fh)
    bad = 0
    for name in CASES:
        w, g = want.get(name, {}), got[name]
        for f in sorted(set(w) | set(g)):
            if w.get(f) != g.get(f):
                what = "missing" if f not in g else "unexpected" if f not in w else "differs"
                print(f"FAIL {name}/{f}: {what}")
                bad += 1
    n = sum(len(v) for v in got.values())
    print(f"{n - bad} passed, {bad} failed")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
