#!/usr/bin/env python3
"""Figures of issue 34 on the bundled model: our LDLQ in llama.cpp's Q4_0 blocks against
llama.cpp's own Q4_0 rounding, both run by llama.cpp.

    PYTHON_WITH_LLAMA_CPP bench/gguf_figures.py CALDERACTL

(an interpreter with llama-cpp-python, numpy and the gguf package, e.g. /work/hfvenv/bin/python)

Files compared (same tensors, same types, same bytes):
  * ours: `compress --serve llamacpp` (LDLQ on the int grid at group 32 = Q4_0; down_proj,
    172 columns, no whole number of 32-blocks, left dense with --modules) then
    `export --format gguf --dtype f32`;
  * llama.cpp's: the same file with every Q4_0 tensor replaced by llama.cpp's own rounding
    of the original weights -- `gguf.quants.quantize(w, Q4_0)`, the numpy port of ggml's
    quantize_row_q4_0_ref that llama-quantize runs for Q4_0 without an importance matrix --
    so the two files differ only in the Q4_0 blocks;
  * llama.cpp's whole quantizer, llama_model_quantize(Q4_0), on an F32 export of the
    original model: it also makes token_embd Q8_0 and keeps the 172-column ffn_down F16
    (its fallbacks), so that file differs beyond the Q4_0 blocks;
  * ours with L·R: `compress --method caldera --rank 4` on the same int4 group-32 grid,
    exported as the same Q4_0 base plus a GGUF LoRA adapter (bytes: both files);
  * the original model as F32 GGUF (reference).
For each: perplexity computed by llama.cpp on the first ROWS eval rows, file bytes, and
llama.cpp generation speed (tokens/s, 2 threads, 128 tokens greedy; the median of 3).
"""
import json
import os
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np

import gguf
import llama_cpp

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from gguf_llamacpp_test import llamacpp_perplexity as perplexity  # noqa: E402  the test's definition
MODEL = os.path.join(HERE, "..", "models", "stories260K")
ROWS = int(os.environ.get("ROWS", "64"))
MODULES = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj"


def run(args, ok=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if ok and r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r


def eval_rows(n):
    with open(os.path.join(MODEL, "eval.safetensors"), "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        info = json.loads(f.read(size))["input_ids"]
        data = f.read()
    dtype = {"I32": np.int32, "I64": np.int64}[info["dtype"]]
    a, b = info["data_offsets"]
    ids = np.frombuffer(data[a:b], dtype=dtype).reshape(info["shape"])
    return [list(map(int, r)) for r in ids[:n]]


def speed(path, lora=None):
    llm = llama_cpp.Llama(model_path=path, lora_path=lora, n_ctx=512, n_threads=2,
                          n_threads_batch=2, verbose=False, seed=1)
    rates = []
    for _ in range(3):
        llm.reset()
        t = time.perf_counter()
        out = llm("Once upon a time", max_tokens=128, temperature=0.0)
        n = out["usage"]["completion_tokens"]
        rates.append(n / (time.perf_counter() - t))
    return sorted(rates)[1], out["choices"][0]["text"]


def measure(name, path, rows, lora=None):
    llm = llama_cpp.Llama(model_path=path, lora_path=lora, n_ctx=len(rows[0]),
                          n_batch=len(rows[0]), logits_all=True, n_threads=2, verbose=False,
                          seed=1)
    ppl = perplexity(llm, rows)
    del llm
    tps, text = speed(path, lora)
    size = os.path.getsize(path) + (os.path.getsize(lora) if lora else 0)
    return {"name": name, "perplexity": ppl, "bytes": size, "tokens_per_s": tps,
            "text": text[:80]}


def llamacpp_rounding(ours, original, out):
    """`ours` with each Q4_0 tensor replaced by llama.cpp's rounding of `original`'s F32."""
    src = {t.name: t for t in gguf.GGUFReader(original).tensors}
    data = bytearray(open(ours, "rb").read())
    for t in gguf.GGUFReader(ours).tensors:
        if t.tensor_type != gguf.GGMLQuantizationType.Q4_0:
            continue
        w = np.asarray(src[t.name].data, dtype=np.float32).reshape(int(t.shape[1]), int(t.shape[0]))
        q = gguf.quants.quantize(w, gguf.GGMLQuantizationType.Q4_0).tobytes()
        assert len(q) == t.n_bytes, (t.name, len(q), t.n_bytes)
        data[t.data_offset: t.data_offset + t.n_bytes] = q
    open(out, "wb").write(bytes(data))


def main():
    ctl = sys.argv[1] if len(sys.argv) > 1 else sys.exit(__doc__)
    rows = eval_rows(ROWS)
    with tempfile.TemporaryDirectory() as tmp:
        original = os.path.join(tmp, "original-f32.gguf")
        run([ctl, "export", "--format", "gguf", "--dtype", "f32", "--model", MODEL,
             "--out", original])
        ckpt = os.path.join(tmp, "ours")
        run([ctl, "compress", "--model", MODEL, "--calibration",
             os.path.join(MODEL, "calibration.safetensors"), "--out", ckpt, "--serve",
             "llamacpp", "--modules", MODULES, "--workers", "2"])
        ours = os.path.join(tmp, "ours-q4_0.gguf")
        run([ctl, "export", "--format", "gguf", "--dtype", "f32", "--model", ckpt, "--out", ours])
        ours_eval = json.loads(run([ctl, "eval", "--json", "--model", ckpt, "--tokens",
                                    os.path.join(MODEL, "eval.safetensors")]).stdout)
        theirs = os.path.join(tmp, "llamacpp-q4_0.gguf")
        llamacpp_rounding(ours, original, theirs)
        # llama.cpp's own quantizer on the whole model, for the record.
        params = llama_cpp.llama_model_quantize_default_params()
        params.ftype = llama_cpp.LLAMA_FTYPE_MOSTLY_Q4_0
        rc = llama_cpp.llama_model_quantize(original.encode(),
                                            os.path.join(tmp, "lq.gguf").encode(), params)
        print(f"llama_model_quantize(original F32 -> Q4_0) returned {rc}")
        # CALDERA: the same Q4_0 base plus L·R of rank 4 as a GGUF LoRA adapter.
        cal = os.path.join(tmp, "caldera")
        run([ctl, "compress", "--model", MODEL, "--calibration",
             os.path.join(MODEL, "calibration.safetensors"), "--out", cal, "--method",
             "caldera", "--rank", "4", "--quantizer", "int", "--q-bits", "4", "--q-group-size",
             "32", "--incoherence", "none", "--lr-bits", "16", "--modules", MODULES,
             "--workers", "2"])
        cal_gguf = os.path.join(tmp, "caldera.gguf")
        run([ctl, "export", "--format", "gguf", "--dtype", "f32", "--model", cal,
             "--out", cal_gguf])
        results = [measure("original F32", original, rows),
                   measure("llama.cpp Q4_0 rounding", theirs, rows),
                   measure("ours (LDLQ) Q4_0", ours, rows),
                   measure("ours CALDERA Q4_0 + LoRA adapter r4 (F32)", cal_gguf, rows,
                           os.path.join(tmp, "caldera.lora.gguf"))]
        if rc == 0:
            results.append(measure("llama_model_quantize Q4_0 (whole model)",
                                   os.path.join(tmp, "lq.gguf"), rows))
    print(f"\nstories260K, first {ROWS} eval rows, llama.cpp {llama_cpp.__version__}, 2 threads; "
          f"calderactl eval of ours (all rows): {ours_eval['perplexity']:.4f}")
    print(f"{'file':42s} {'perplexity':>10s} {'bytes':>9s} {'tok/s':>8s}")
    for r in results:
        print(f"{r['name']:42s} {r['perplexity']:10.4f} {r['bytes']:9d} {r['tokens_per_s']:8.1f}")
    for r in results:
        print(f"  {r['name']}: {r['text']!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
