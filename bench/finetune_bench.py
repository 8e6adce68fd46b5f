#!/usr/bin/env python3
"""Recovery fine-tuning at equal bits: for each --target-bits budget,
`calderactl compress` then `calderactl eval`; then the same job with
`--finetune-steps` (finetune tasks in the plan; `--mode posthoc`: `calderactl
finetune` on a copy of the first checkpoint instead) and `eval` again (the
stored bits do not change).
Prints bits per parameter (report.json), perplexity without and with
fine-tuning, the CPU seconds (user + system) of the compress job and of the
fine-tuning (CPU, not wall: the machines these ran on are shared),
beside AutoRound's perplexity at its nearest budget on the bundled model
(issue 33's figures, from ../shared/peers/run_autoround.py, auto-round 0.15).

  bench/finetune_bench.py [--budgets 2.25,3.25,3.5,4.25] [--steps 200]
                          [--mode job|posthoc] [--finetune-flags "..."]
                          [--compress-flags "..."] [--calderactl BIN] [--json OUT]

Never run by the tests (minutes per budget).
"""
import argparse
import json
import os
import resource
import shutil
import subprocess
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# AutoRound on models/stories260K (bits per parameter as run_llmc.py counts
# them -> perplexity), issue 33.
AUTOROUND = {2.21: 14.14, 2.47: 9.77, 3.21: 4.60, 3.47: 4.37, 4.21: 3.85, 4.47: 3.81}


def run(cmd):
    """Runs cmd; returns its stdout and its CPU seconds (user + system)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return out, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def perplexity(calderactl, model, tokens):
    out, _ = run([calderactl, "eval", "--model", model, "--tokens", tokens, "--json"])
    return json.loads(out)["perplexity"]


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default=os.path.join(ROOT, "models", "stories260K"))
    p.add_argument("--calibration")
    p.add_argument("--eval")
    p.add_argument("--calderactl", default=os.path.join(ROOT, "build", "bin", "calderactl"))
    p.add_argument("--budgets", default="2.25,3.25,3.5,4.25")
    p.add_argument("--steps", type=int, default=200)
    p.add_argument("--finetune-flags", default="",
                   help="more flags: of the compress job (job mode) or of calderactl finetune")
    p.add_argument("--compress-flags", default="", help="more flags of both compress jobs")
    p.add_argument("--mode", choices=("job", "posthoc"), default="job")
    p.add_argument("--json")
    a = p.parse_args()
    calibration = a.calibration or os.path.join(a.model, "calibration.safetensors")
    tokens = a.eval or os.path.join(a.model, "eval.safetensors")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for budget in [float(b) for b in a.budgets.split(",")]:
            out = os.path.join(tmp, f"b{budget}")
            _, compress_s = run([a.calderactl, "compress", "--model", a.model, "--calibration",
                                 calibration, "--out", out, "--target-bits", str(budget)]
                                + a.compress_flags.split())
            with open(os.path.join(out, "report.json")) as f:
                totals = json.load(f)["totals"]
            bits = totals.get("bits_per_param")
            base = perplexity(a.calderactl, out, tokens)
            tuned_dir = out + "-ft"
            if a.mode == "job":
                # The whole job again with finetune tasks: its CPU seconds minus the plain job's.
                _, job_s = run([a.calderactl, "compress", "--model", a.model, "--calibration",
                                calibration, "--out", tuned_dir, "--target-bits", str(budget),
                                "--finetune-steps", str(a.steps)]
                               + a.compress_flags.split() + a.finetune_flags.split())
                finetune_s = job_s - compress_s
            else:
                shutil.copytree(out, tuned_dir)
                _, finetune_s = run([a.calderactl, "finetune", "--model", tuned_dir,
                                     "--original", a.model, "--calibration", calibration,
                                     "--finetune-steps", str(a.steps)]
                                    + a.finetune_flags.split())
            tuned = perplexity(a.calderactl, tuned_dir, tokens)
            near = min(AUTOROUND, key=lambda b: abs(b - bits))
            rows.append({"target_bits": budget, "bits_per_param": bits, "perplexity": base,
                         "perplexity_finetuned": tuned, "compress_cpu_seconds": compress_s,
                         "finetune_cpu_seconds": finetune_s, "autoround_bits": near,
                         "autoround_perplexity": AUTOROUND[near]})
            r = rows[-1]
            print(f"target {budget:5.2f}  bits {bits:6.3f}  ppl {base:7.3f}  "
                  f"fine-tuned {tuned:7.3f}  (AutoRound {AUTOROUND[near]:6.2f} at {near})  "
                  f"CPU s: compress {compress_s:6.1f}  fine-tune {finetune_s:6.1f}", flush=True)
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
