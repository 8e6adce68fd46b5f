#!/usr/bin/env python3
"""Quality at equal bits: compresses a model at a list of settings with
`calderactl compress`, evaluates each, and prints bits per parameter (every
stored bit of the compressed linears, scales and padding included, from
report.json), perplexity and wall time per setting, then the (bits, perplexity)
frontier: the settings no other setting beats with fewer or equal bits.

  bench/quality_bench.py [--model DIR] [--calibration F] [--eval F] [--calderactl BIN]
                         [--settings NAME,...] [--peer-results DIR] [--json OUT]

--peer-results reads the result.json files that ../shared/peers/run_llmc.py
writes (llm-compressor GPTQ, run in a venv of its own: `pip install llmcompressor`,
then `LLMC_OUT=DIR python run_llmc.py`) and puts them in the same table, so one
run compares both at each budget. Never run by the tests (minutes per setting
on real models).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# name -> calderactl compress flags. Budgets from ~2 to ~4.5 bits per parameter.
SETTINGS = {
    "ldlq-e8p2": "--method ldlq --q-bits 2",
    "caldera-r4-q2": "--rank 4",
    "caldera-r8-q2": "--rank 8",
    "ldlq-uniform3": "--method ldlq --quantizer uniform --q-bits 3",
    "ldlq-uniform3-g32": "--method ldlq --quantizer uniform --q-bits 3 --q-group-size 32",
    "caldera-r4-uniform3": "--rank 4 --quantizer uniform --q-bits 3",
    "caldera-r16-q2": "--rank 16",
    "caldera-r4-q3": "--rank 4 --q-bits 3",
    "ldlq-e8p3": "--method ldlq --q-bits 3",
    "caldera-r8-q3": "--rank 8 --q-bits 3",
    "ldlq-uniform4": "--method ldlq --quantizer uniform --q-bits 4",
    "ldlq-uniform4-g32": "--method ldlq --quantizer uniform --q-bits 4 --q-group-size 32",
    "ldlq-e8p4": "--method ldlq --q-bits 4",
    # --target-bits: per block, the candidates with the lowest total weighted
    # error whose average stays within the budget (job/bit_allocation.h).
    # The budgets of llm-compressor GPTQ's points on stories260K (W2/W3/W4,
    # per channel and g32), then round ones.
    "budget-2.21": "--target-bits 2.21",
    "budget-2.47": "--target-bits 2.47",
    "budget-3.21": "--target-bits 3.21",
    "budget-3.47": "--target-bits 3.47",
    "budget-4.21": "--target-bits 4.21",
    "budget-4.47": "--target-bits 4.47",
    "budget-2.6": "--target-bits 2.6",
    "budget-3": "--target-bits 3",
    "budget-3.5": "--target-bits 3.5",
    "budget-4": "--target-bits 4",
    "budget-4.5": "--target-bits 4.5",
}


def run(cmd):
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {r.returncode}:\n{r.stderr[-2000:]}")
    return r.stdout


def measure(args, name, flags, tmp):
    out = os.path.join(tmp, name)
    t0 = time.time()
    run([args.calderactl, "compress", "--model", args.model, "--calibration", args.calibration,
         "--out", out] + flags.split())
    seconds = time.time() - t0
    ppl = json.loads(run([args.calderactl, "eval", "--json", "--model", out, "--tokens",
                          args.eval]))["perplexity"]
    with open(os.path.join(out, "report.json")) as f:
        bits = json.load(f)["totals"]["bits_per_param"]
    return {"tool": "caldera", "setting": name, "flags": flags, "bits": bits,
            "perplexity": ppl, "seconds": seconds}


def peer_rows(directory):
    rows = []
    for entry in sorted(os.listdir(directory)):
        p = os.path.join(directory, entry, "result.json")
        if not os.path.exists(p):
            continue
        with open(p) as f:
            r = json.load(f)
        rows.append({"tool": "llm-compressor", "setting": entry,
                     "flags": "GPTQModifier", "bits": r["bits_per_param_fp16_scales"],
                     "perplexity": r["ppl_dense_reload"], "seconds": r.get("oneshot_wall_s", 0)})
    return rows


def frontier(rows):
    best, out = float("inf"), []
    for r in sorted(rows, key=lambda r: (r["bits"], r["perplexity"])):
        if r["perplexity"] < best:
            best = r["perplexity"]
            out.append(r)
    return out


def main():
    fixture = os.path.join(ROOT, "..", "shared", "models", "stories260K")
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default=fixture)
    ap.add_argument("--calibration", default=None)
    ap.add_argument("--eval", default=None)
    ap.add_argument("--calderactl", default=os.path.join(ROOT, "build", "bin", "calderactl"))
    ap.add_argument("--settings", default=",".join(SETTINGS))
    ap.add_argument("--peer-results", default=None)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    args.calibration = args.calibration or os.path.join(args.model, "calibration.safetensors")
    args.eval = args.eval or os.path.join(args.model, "eval.safetensors")
    base = json.loads(run([args.calderactl, "eval", "--json", "--model", args.model, "--tokens",
                           args.eval]))["perplexity"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.settings.split(","):
            if name not in SETTINGS:
                sys.exit(f"unknown setting {name}; known: {', '.join(SETTINGS)}")
            r = measure(args, name, SETTINGS[name], tmp)
            print(f"{name}: {r['bits']:.3f} bits, perplexity {r['perplexity']:.3f}, "
                  f"{r['seconds']:.1f} s", file=sys.stderr)
            rows.append(r)
    if args.peer_results:
        rows += peer_rows(args.peer_results)
    front = frontier(rows)
    print(f"original model perplexity: {base:.4f}\n")
    print("| tool | setting | bits/param | perplexity | seconds | on the frontier |")
    print("|---|---|---|---|---|---|")
    for r in sorted(rows, key=lambda r: r["bits"]):
        print(f"| {r['tool']} | {r['setting']} | {r['bits']:.3f} | {r['perplexity']:.3f} | "
              f"{r['seconds']:.1f} | {'yes' if r in front else ''} |")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"original_perplexity": base, "rows": rows,
                       "frontier": [r["setting"] for r in front]}, f, indent=1)


if __name__ == "__main__":
    main()
