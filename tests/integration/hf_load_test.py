#!/usr/bin/env python3
"""What our users' tools make of our exports (issue 16, item 5): the bundled
model compressed, exported with `--format hf` and loaded by transformers'
AutoModelForCausalLM (no custom code), and with `--format peft` loaded as base +
PEFT LoRA adapter; a random Qwen3 test model (q/k head norms) through hf too; each one's perplexity on the eval tokens, computed by torch,
must equal `calderactl eval` on the compressed checkpoint, and the merged PEFT
weights must equal the hf export's.

torch, transformers and peft are heavy (GBs of wheels), so this suite runs with
an interpreter that has them, named by CALDERA_HF_PYTHON (for example a venv
made with `pip install torch transformers peft`); without it, it exits 77 and
CTest reports it skipped, saying so. CALDERA_BIN_DIR: the build's bin/.

    CALDERA_HF_PYTHON=/path/to/venv/bin/python tests/integration/hf_load_test.py
"""
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEQS = 32  # eval sequences scored (of the file's), enough for a 1e-4 agreement check
# Random test models of the newer families (make-test-model flags).
FAMILIES = [
    ("Qwen3ForCausalLM", ["--head-dim", "32"]),
    ("MixtralForCausalLM", ["--experts", "4", "--experts-per-token", "2", "--intermediate", "48"]),
    ("Qwen3MoeForCausalLM", ["--experts", "6", "--experts-per-token", "2", "--moe-intermediate",
                             "24", "--head-dim", "32"]),
    ("Qwen3MoeForCausalLM", ["--experts", "6", "--experts-per-token", "3", "--moe-intermediate",
                             "24", "--norm-topk-prob", "--seed", "3"]),
]


def inner(hf_dir, peft_dir, tokens_path):
    """Runs under CALDERA_HF_PYTHON: prints perplexities and the weight check."""
    import torch
    import torch_perplexity  # beside this file
    from peft import PeftModel
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(1)
    ids = load_file(tokens_path)["input_ids"][:SEQS].long()

    def perplexity(model):
        return torch_perplexity.perplexity(model, ids)

    hf = AutoModelForCausalLM.from_pretrained(hf_dir, torch_dtype=torch.float32)
    if peft_dir == "-":  # an hf export only
        print(json.dumps({"hf": perplexity(hf)}))
        return
    base = AutoModelForCausalLM.from_pretrained(os.path.join(peft_dir, "base"),
                                                torch_dtype=torch.float32)
    peft = PeftModel.from_pretrained(base, os.path.join(peft_dir, "adapter"))
    out = {"hf": perplexity(hf), "peft": perplexity(peft)}
    merged = peft.merge_and_unload().state_dict()
    worst = 0.0
    for name, w in hf.state_dict().items():
        if name.endswith("proj.weight"):
            m = merged[name]
            worst = max(worst, float((m - w).abs().max() / w.abs().max()))
    out["merged_max_rel_diff"] = worst
    print(json.dumps(out))


def run(args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "--inner":
        inner(*sys.argv[2:])
        return 0
    hf_python = os.environ.get("CALDERA_HF_PYTHON")
    if not hf_python:
        print("skipped: set CALDERA_HF_PYTHON to a python with torch, transformers and peft")
        return 77
    bin_dir = os.environ.get("CALDERA_BIN_DIR") or sys.exit("CALDERA_BIN_DIR is not set")
    fixtures = os.environ.get("CALDERA_FIXTURES_DIR") or os.path.join(HERE, "..", "..", "models")
    model = os.path.join(fixtures, "stories260K")
    ctl = os.path.join(bin_dir, "calderactl")
    with tempfile.TemporaryDirectory() as tmp:
        tokens = os.path.join(tmp, "eval.safetensors")
        out = os.path.join(tmp, "compressed")
        run([ctl, "compress", "--model", model, "--calibration",
             os.path.join(model, "calibration.safetensors"), "--out", out, "--rank", "8",
             "--iters", "2", "--lplr-iters", "2"])
        # Our perplexity on the same SEQS sequences: a token file of just those.
        run([hf_python, "-c",
             "import sys, torch; from safetensors.torch import load_file, save_file; "
             f"t = load_file(sys.argv[1])['input_ids'][:{SEQS}].contiguous(); "
             "save_file({'input_ids': t}, sys.argv[2])",
             os.path.join(model, "eval.safetensors"), tokens])
        ours = json.loads(run([ctl, "eval", "--json", "--model", out, "--tokens", tokens]))
        hf_dir, peft_dir = os.path.join(tmp, "hf"), os.path.join(tmp, "peft")
        run([ctl, "export", "--format", "hf", "--model", out, "--out", hf_dir])
        run([ctl, "export", "--format", "peft", "--ft-rank", "4", "--model", out, "--out",
             peft_dir])
        theirs = json.loads(run([hf_python, os.path.abspath(__file__), "--inner", hf_dir,
                                 peft_dir, tokens]).strip().splitlines()[-1])
        # Qwen3 (q/k head norms, head_dim wider than hidden / heads) and the
        # two mixtures of experts: random test models compressed, exported and
        # read by transformers' own code for each architecture.
        families = {}
        for i, (arch, extra) in enumerate(FAMILIES):
            name = f"{arch.replace('ForCausalLM', '').lower()}-{i}"
            src = os.path.join(tmp, name)
            qtokens = os.path.join(tmp, name + "-tokens.safetensors")
            run([ctl, "make-test-model", "--out", src, "--arch", arch, "--layers", "2",
                 "--tokens-out", qtokens, "--samples", "16", "--seq-len", "64"] + extra)
            qout, qhf = os.path.join(tmp, name + "-compressed"), os.path.join(tmp, name + "-hf")
            run([ctl, "compress", "--model", src, "--calibration", qtokens, "--out", qout,
                 "--method", "ldlq", "--quantizer", "uniform", "--q-bits", "4"])
            q_ours = json.loads(run([ctl, "eval", "--json", "--model", qout, "--tokens",
                                     qtokens]))
            run([ctl, "export", "--format", "hf", "--model", qout, "--out", qhf])
            q_theirs = json.loads(run([hf_python, os.path.abspath(__file__), "--inner", qhf,
                                       "-", qtokens]).strip().splitlines()[-1])
            families[name] = (q_ours["perplexity"], q_theirs["hf"])
    print(f"calderactl eval {ours['perplexity']:.6f}; transformers (hf export) "
          f"{theirs['hf']:.6f}; transformers + peft (peft export) {theirs['peft']:.6f}; "
          f"merged PEFT vs hf weights max relative difference {theirs['merged_max_rel_diff']:.2e}")
    ok = True
    for name, (mine, hf) in families.items():
        rel = abs(hf - mine) / mine
        print(f"{name}: calderactl eval {mine:.6f}; transformers (hf export) {hf:.6f} "
              f"({rel:.1e} relative)")
        if rel > 1e-4:
            print(f"FAIL: {name} hf perplexity differs from calderactl eval by {rel:.2e} relative")
            ok = False
    for name in ("hf", "peft"):
        rel = abs(theirs[name] - ours["perplexity"]) / ours["perplexity"]
        if rel > 1e-4:
            print(f"FAIL: {name} perplexity differs from calderactl eval by {rel:.2e} relative")
            ok = False
    if theirs["merged_max_rel_diff"] > 1e-5:
        print("FAIL: base + B·A does not give the hf export's weights")
        ok = False
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
