#!/usr/bin/env python3
"""Format parity with llm-compressor (issue 32): our `export --format compressed-tensors`
against llm-compressor's own compressed-tensors output of the same scheme on the bundled
model, and our reader on llm-compressor's checkpoint.

    ct_parity.py CALDERACTL LLMC_DIR SCHEME

LLMC_DIR: a folder written by bench/llmc_compressed_tensors.py (model.save_pretrained(
save_compressed=True) after GPTQ), SCHEME w4pc (W4, one scale per row, every linear) or
w4g64 (W4 group 64 on the 64-wide linears; down_proj, 172 wide, per row). Needs a python with
torch, transformers and compressed-tensors (`pip install llmcompressor`). It
  1. compresses stories260K with `--serve vllm --method ldlq` in the same scheme and exports it;
  2. compares quantization_config (every key, recursively, and the scheme values), the tensor
     names, dtypes and shapes of both folders;
  3. reads llm-compressor's checkpoint with our reader (`calderactl export --format dense`) and
     compares every linear with compressed-tensors' own decompression (transformers,
     run_compressed=False): bit for bit in float32;
  4. prints `calderactl eval` of llm-compressor's folder beside transformers' perplexity of it.
Exit 0 when 2 and 3 agree.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL = os.path.join(HERE, "..", "models", "stories260K")
FLAGS = {"w4pc": ["--q-group-size", "65536"],
         "w4g64": ["--q-group-size", "64", "--modules",
                   "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj"]}


def header(folder):
    """{tensor: (dtype, shape)} over a folder's safetensors files."""
    out = {}
    for f in sorted(os.listdir(folder)):
        if f.endswith(".safetensors"):
            with open(os.path.join(folder, f), "rb") as fh:
                n = struct.unpack("<Q", fh.read(8))[0]
                h = json.loads(fh.read(n))
            out.update({k: (v["dtype"], v["shape"]) for k, v in h.items() if k != "__metadata__"})
    return out


def keys(j, path=""):
    """Every key path of a JSON value (config_groups' members by position, not name)."""
    if isinstance(j, dict):
        out = set()
        for k, v in j.items():
            kk = "group_*" if path.endswith("config_groups") else k
            out.add(f"{path}/{kk}")
            out |= keys(v, f"{path}/{kk}")
        return out
    return set()


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def main():
    if len(sys.argv) != 4 or sys.argv[3] not in FLAGS:
        sys.exit(__doc__)
    ctl, theirs, scheme = sys.argv[1:]
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM, CompressedTensorsConfig

    ok = True
    with tempfile.TemporaryDirectory() as tmp:
        c, ours = os.path.join(tmp, "c"), os.path.join(tmp, "ct")
        run([ctl, "compress", "--model", MODEL, "--calibration",
             os.path.join(MODEL, "calibration.safetensors"), "--out", c, "--serve", "vllm",
             "--method", "ldlq", "--workers", "2"] + FLAGS[scheme])
        run([ctl, "export", "--format", "compressed-tensors", "--dtype", "f32", "--model", c,
             "--out", ours])
        ours = os.path.join(ours, "base")
        qo = json.load(open(os.path.join(ours, "config.json")))["quantization_config"]
        qt = json.load(open(os.path.join(theirs, "config.json")))["quantization_config"]
        if scheme == "w4g64":
            qt = dict(qt, config_groups={k: g for k, g in qt["config_groups"].items()
                                         if g["weights"]["strategy"] == "group"})
        ko, kt = keys(qo), keys(qt)
        print(f"quantization_config: {len(ko)} key paths ours, {len(kt)} theirs; "
              f"only ours {sorted(ko - kt)}, only theirs {sorted(kt - ko)}")
        ok &= ko == kt
        for k in ("quant_method", "format", "quantization_status"):
            ok &= qo[k] == qt[k]
        # Scheme values per module: theirs by regex targets, ours by name.
        def schemes(qc):
            return sorted(json.dumps({k: g["weights"][k] for k in
                                      ("num_bits", "strategy", "group_size", "symmetric", "type")},
                                     sort_keys=True) for g in qc["config_groups"].values())
        print(f"schemes ours {schemes(qo)}\n        theirs {schemes(qt)}")
        ok &= schemes(qo) == schemes(qt)
        ho, ht = header(ours), header(theirs)
        if scheme == "w4g64":
            # Our one --q-group-size cannot give down_proj (172 wide) its own per-row scheme:
            # it stays dense in ours (ignore) and is left out of the comparison.
            ho = {k: v for k, v in ho.items() if "down_proj" not in k}
            ht = {k: v for k, v in ht.items() if "down_proj" not in k}
        only_o, only_t = sorted(set(ho) - set(ht)), sorted(set(ht) - set(ho))
        same = [n for n in ho if n in ht and ho[n] != ht[n]]
        print(f"tensors: {len(ho)} ours, {len(ht)} theirs; only ours {only_o[:6]}, only theirs "
              f"{only_t[:6]}; dtype/shape differ {[(n, ho[n], ht[n]) for n in same[:6]]}")
        ok &= not only_o and not only_t and not same
        # Our reader on their checkpoint.
        dense = os.path.join(tmp, "their-dense")
        run([ctl, "export", "--format", "dense", "--model", theirs, "--out", dense])
        mine = {}
        for f in os.listdir(dense):
            if f.endswith(".safetensors"):
                mine.update(load_file(os.path.join(dense, f)))
        ref = AutoModelForCausalLM.from_pretrained(
            theirs, dtype=torch.float32,
            quantization_config=CompressedTensorsConfig(run_compressed=False)).state_dict()
        worst, n = 0.0, 0
        for name, w in ref.items():
            if name.endswith("_proj.weight"):
                d = (mine[name] - w).abs().max().item()
                worst = max(worst, d)
                n += 1
        print(f"our reader on llm-compressor's checkpoint: {n} linears, max |ours - "
              f"compressed-tensors'| = {worst:g}")
        ok &= n == 35 and worst == 0.0
        ev = json.loads(run([ctl, "eval", "--json", "--model", theirs, "--tokens",
                             os.path.join(MODEL, "eval.safetensors")]))
        res = os.path.join(theirs, "result.json")
        tppl = json.load(open(res))["perplexity"] if os.path.exists(res) else float("nan")
        print(f"perplexity of llm-compressor's folder: calderactl eval {ev['perplexity']:.6f}, "
              f"transformers {tppl:.6f}")
    print("PARITY OK" if ok else "PARITY FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
