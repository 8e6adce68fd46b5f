#!/usr/bin/env python3
"""Figures of issue 32 on the bundled model: what serving with vLLM costs and what it buys.

    serve_figures.py CALDERACTL [LLMC_ROOT]

For each setting it compresses stories260K (calderactl defaults otherwise), evaluates it
(`calderactl eval`, the bundled eval set) and prints the stored bits per parameter of the
linears (report.json, every bit counted), the perplexity and -- for `--serve vllm` runs -- the
bytes on disk of `export --format compressed-tensors` (base safetensors + adapter, f32 as the
model and f16). Rows:
  * `--serve vllm --method ldlq --q-group-size 65536`: int4 per channel, no L·R (the scheme of
    llm-compressor's W4A16 per channel);
  * `--serve vllm --target-bits B` and the unrestricted `--target-bits B` beside it (the
    frontier with and without the serving restriction);
and, with LLMC_ROOT (bench/llmc_compressed_tensors.py's output), llm-compressor's GPTQ W4A16
rows from their result.json (perplexity of the compressed folder loaded by transformers,
bytes of its safetensors).
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "models", "stories260K")
BUDGETS = os.environ.get("BUDGETS", "4.25,4.5,5,5.5,6").split(",")


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout


def size(folder):
    total = 0
    for root, _, files in os.walk(folder):
        total += sum(os.path.getsize(os.path.join(root, f)) for f in files
                     if f.endswith(".safetensors"))
    return total


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    ctl = sys.argv[1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        settings = [("serve ldlq int4 per channel",
                     ["--serve", "vllm", "--method", "ldlq", "--q-group-size", "65536"])]
        for b in BUDGETS:
            settings.append((f"serve --target-bits {b}", ["--serve", "vllm", "--target-bits", b]))
            settings.append((f"unrestricted --target-bits {b}", ["--target-bits", b]))
        for i, (name, flags) in enumerate(settings):
            out = os.path.join(tmp, f"c{i}")
            run([ctl, "compress", "--model", MODEL, "--calibration",
                 os.path.join(MODEL, "calibration.safetensors"), "--out", out, "--workers", "2"]
                + flags)
            bits = json.load(open(os.path.join(out, "report.json")))["totals"]["bits_per_param"]
            ppl = json.loads(run([ctl, "eval", "--json", "--model", out, "--tokens",
                                  os.path.join(MODEL, "eval.safetensors")]))["perplexity"]
            row = {"setting": name, "bits": bits, "perplexity": ppl}
            if "--serve" in flags:
                for dtype in ("f32", "f16"):
                    ct = os.path.join(tmp, f"ct{i}{dtype}")
                    run([ctl, "export", "--format", "compressed-tensors", "--dtype", dtype,
                         "--model", out, "--out", ct])
                    row[f"bytes_{dtype}"] = size(ct)
                    row[f"adapter_{dtype}"] = size(os.path.join(ct, "adapter")) \
                        if os.path.isdir(os.path.join(ct, "adapter")) else 0
            print(json.dumps(row), flush=True)
            rows.append(row)
    if len(sys.argv) > 2:
        for scheme in sorted(os.listdir(sys.argv[2])):
            res = os.path.join(sys.argv[2], scheme, "result.json")
            if os.path.exists(res):
                r = json.load(open(res))
                rows.append({"setting": f"llm-compressor GPTQ {scheme}", "bits": None,
                             "perplexity": r["perplexity"], "bytes_f32": r["safetensors_bytes"]})
    print("\n| setting | bits/param (linears) | perplexity | export bytes f32 (adapter) | f16 (adapter) |")
    print("| --- | --- | --- | --- | --- |")
    for r in rows:
        bits = f"{r['bits']:.3f}" if r["bits"] else "-"
        f32 = f"{r['bytes_f32']:,} ({r.get('adapter_f32', 0):,})" if "bytes_f32" in r else "-"
        f16 = f"{r['bytes_f16']:,} ({r.get('adapter_f16', 0):,})" if "bytes_f16" in r else "-"
        print(f"| {r['setting']} | {bits} | {r['perplexity']:.4f} | {f32} | {f16} |")


if __name__ == "__main__":
    main()
