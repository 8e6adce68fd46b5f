#!/usr/bin/env python3
"""What transformers makes of `calderactl export --format compressed-tensors` (issue 32):
the bundled model compressed with `--serve vllm` at two budgets (--target-bits 4.5 and 5.5,
so the ladder mixes LDLQ matrices with CALDERA ones that carry a 16-bit L·R), exported, and
loaded by transformers with the compressed-tensors package (no custom code), then with the
LoRA adapter through peft. The perplexity torch computes must equal `calderactl eval` of
the compressed checkpoint within 1e-4 relative. Also: from_pretrained on the compressed
checkpoint folder itself raises (it never loads as random weights), while calderactl eval
reads it.

torch, transformers, compressed-tensors and peft are heavy, so this suite runs with an
interpreter that has them, named by CALDERA_HF_PYTHON; one command makes one:

    python3 -m venv /opt/hf && /opt/hf/bin/pip install torch transformers peft compressed-tensors

(`pip install llmcompressor peft` brings the same). Without it, it exits 77 and CTest
reports it skipped, saying so. CALDERA_BIN_DIR: the build's bin/.

    CALDERA_HF_PYTHON=/opt/hf/bin/python tests/integration/compressed_tensors_load_test.py
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEQS = 32  # eval sequences scored, enough for a 1e-4 agreement check
BUDGETS = ("4.5", "5.5")


def inner(export_dir, compressed_dir, tokens_path):
    """Runs under CALDERA_HF_PYTHON: prints the perplexities as JSON."""
    import torch
    import torch_perplexity  # beside this file
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    torch.set_num_threads(1)
    ids = load_file(tokens_path)["input_ids"][:SEQS].long()

    def perplexity(model):
        return torch_perplexity.perplexity(model, ids)

    out = {}
    base_dir = os.path.join(export_dir, "base")
    # As it is (compressed linears, decompressed by compressed-tensors on use).
    plain = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    out["base"] = perplexity(plain)
    adapter = os.path.join(export_dir, "adapter")
    if os.path.isdir(adapter):
        from peft import PeftModel

        # PEFT wraps plain Linear layers: decompress on load, then add B·A.
        base = AutoModelForCausalLM.from_pretrained(
            base_dir, dtype=torch.float32,
            quantization_config=CompressedTensorsConfig(run_compressed=False))
        out["base_adapter"] = perplexity(PeftModel.from_pretrained(base, adapter))
    try:
        AutoModelForCausalLM.from_pretrained(compressed_dir, dtype=torch.float32)
        out["caldera_folder"] = "loaded"
    except Exception as e:  # the refusal we want
        out["caldera_folder"] = f"raised {type(e).__name__}: {str(e)[:160]}"
    print(json.dumps(out))


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--inner":
        inner(*sys.argv[2:])
        return 0
    hf_python = os.environ.get("CALDERA_HF_PYTHON")
    if not hf_python:
        print("skipped: set CALDERA_HF_PYTHON to a python with torch, transformers, peft and "
              "compressed-tensors (pip install torch transformers peft compressed-tensors)")
        return 77
    bin_dir = os.environ.get("CALDERA_BIN_DIR") or sys.exit("CALDERA_BIN_DIR is not set")
    fixtures = os.environ.get("CALDERA_FIXTURES_DIR") or os.path.join(HERE, "..", "..", "models")
    model = os.path.join(fixtures, "stories260K")
    ctl = os.path.join(bin_dir, "calderactl")
    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "eval.safetensors")
        run([hf_python, "-c",
             "import sys; from safetensors.torch import load_file, save_file; "
             f"t = load_file(sys.argv[1])['input_ids'][:{SEQS}].contiguous(); "
             "save_file({'input_ids': t}, sys.argv[2])",
             os.path.join(model, "eval.safetensors"), tokens])
        for budget in BUDGETS:
            out = os.path.join(tmp, "c" + budget)
            run([ctl, "compress", "--model", model, "--calibration",
                 os.path.join(model, "calibration.safetensors"), "--out", out, "--serve", "vllm",
                 "--target-bits", budget, "--iters", "2", "--lplr-iters", "2", "--workers", "2"])
            ours = json.loads(run([ctl, "eval", "--json", "--model", out, "--tokens", tokens]))
            export = os.path.join(tmp, "e" + budget)
            run([ctl, "export", "--format", "compressed-tensors", "--dtype", "f32", "--model", out,
                 "--out", export])
            # Our reader on the export's base (Q alone) for the no-adapter figure.
            base_ours = json.loads(run([ctl, "eval", "--json", "--model",
                                        os.path.join(export, "base"), "--tokens", tokens]))
            theirs = json.loads(run([hf_python, os.path.abspath(__file__), "--inner", export,
                                     out, tokens]).strip().splitlines()[-1])
            print(f"--target-bits {budget}: calderactl eval {ours['perplexity']:.6f}; "
                  f"transformers base {theirs['base']:.6f} (calderactl eval of it "
                  f"{base_ours['perplexity']:.6f}); base + adapter "
                  f"{theirs.get('base_adapter', float('nan')):.6f}; "
                  f"from_pretrained(compressed folder): {theirs['caldera_folder']}")
            want = ours["perplexity"]
            got = theirs.get("base_adapter", theirs["base"])
            if abs(got - want) / want > 1e-4:
                print(f"FAIL: {budget}: transformers {got} vs calderactl eval {want}")
                ok = False
            if abs(theirs["base"] - base_ours["perplexity"]) / base_ours["perplexity"] > 1e-4:
                print(f"FAIL: {budget}: transformers and calderactl disagree on the base")
                ok = False
            if "base_adapter" not in theirs:
                print(f"FAIL: {budget}: the ladder chose no L·R (no adapter to test)")
                ok = False
            if not theirs["caldera_folder"].startswith("raised"):
                print("FAIL: from_pretrained loaded the compressed checkpoint folder")
                ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
