#!/usr/bin/env python3
"""llama.cpp itself on `calderactl export --format gguf` (issue 34): the bundled model
compressed with `--serve llamacpp` (Q4_0; the 172-column down_proj left dense with
--modules), exported, loaded by llama.cpp through llama-cpp-python, made to generate text,
and its perplexity on the first eval rows compared with `calderactl eval` of the same
checkpoint: within 1%; llama.cpp's tokenizer from our metadata gives our ids; and a CALDERA
checkpoint (Q4_0 + L·R of rank 4) exported as base + GGUF LoRA adapter, which llama.cpp
applies at load: again within 1% (llama.cpp rounds the activations to 8 bits for its Q4_0 dot
products, so it is close, not bit-exact).

llama-cpp-python builds llama.cpp from source, so this runs with an interpreter that has
it, named by CALDERA_LLAMACPP_PYTHON (or CALDERA_HF_PYTHON when that one has it); one
command makes one (about 30 minutes on 2 cores):
    python3 -m venv /opt/llama && CMAKE_ARGS="-DGGML_NATIVE=OFF" \\
        /opt/llama/bin/pip install llama-cpp-python numpy
Without it, it exits 77 and CTest reports it skipped, saying so. CALDERA_BIN_DIR: the
build's bin/.
    CALDERA_LLAMACPP_PYTHON=/opt/llama/bin/python tests/integration/gguf_llamacpp_test.py
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEQS = 16  # eval rows scored
MODULES = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj"


def llamacpp_perplexity(llm, rows):
    """Token perplexity as calderactl eval defines it (each row on its own, every next
    token predicted), from llama.cpp's logits."""
    import numpy as np
    total, count = 0.0, 0
    for row in rows:
        llm.reset()
        llm.eval(row)
        logits = np.array(llm.scores[: len(row) - 1], dtype=np.float64)
        top = logits.max(axis=1, keepdims=True)
        logz = np.log(np.exp(logits - top).sum(axis=1)) + top[:, 0]
        total += float((logz - logits[np.arange(len(row) - 1), row[1:]]).sum())
        count += len(row) - 1
    return float(np.exp(total / count))


def inner(gguf_path, rows_path, lora_path=None):
    """Runs under the llama-cpp-python interpreter: prints the results as JSON."""
    from llama_cpp import Llama
    rows = json.load(open(rows_path))
    llm = Llama(model_path=gguf_path, lora_path=lora_path, n_ctx=len(rows[0]),
                n_batch=len(rows[0]), logits_all=True, n_threads=2, verbose=False, seed=1)
    out = {"perplexity": llamacpp_perplexity(llm, rows)}
    llm.reset()
    out["text"] = llm("Once upon a time", max_tokens=32, temperature=0.0)["choices"][0]["text"]
    out["tokens"] = llm.tokenize(b"Once upon a time, a little girl", add_bos=True)
    print(json.dumps(out))


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def eval_rows(path, n):
    """The first n rows of a token file's input_ids (I32 or I64), without numpy."""
    with open(path, "rb") as f:
        size = struct.unpack("<Q", f.read(8))[0]
        info = json.loads(f.read(size))["input_ids"]
        data = f.read()
    fmt = {"I32": "i", "I64": "q"}[info["dtype"]]
    width = info["shape"][1]
    a, _ = info["data_offsets"]
    step = struct.calcsize(fmt)
    return [list(struct.unpack_from(f"<{width}{fmt}", data, a + r * width * step))
            for r in range(min(n, info["shape"][0]))]


def find_python():
    for var in ("CALDERA_LLAMACPP_PYTHON", "CALDERA_HF_PYTHON"):
        py = os.environ.get(var)
        if py and subprocess.run([py, "-c", "import llama_cpp, numpy"],
                                 capture_output=True).returncode == 0:
            return py
    return None


def main():
    if len(sys.argv) in (4, 5) and sys.argv[1] == "--inner":
        inner(*sys.argv[2:])
        return 0
    py = find_python()
    if py is None:
        print("skipped: set CALDERA_LLAMACPP_PYTHON to a python with llama-cpp-python and numpy "
              "(CMAKE_ARGS=-DGGML_NATIVE=OFF pip install llama-cpp-python numpy)")
        return 77
    bin_dir = os.environ.get("CALDERA_BIN_DIR") or sys.exit("CALDERA_BIN_DIR is not set")
    fixtures = os.environ.get("CALDERA_FIXTURES_DIR") or os.path.join(HERE, "..", "..", "models")
    model = os.path.join(fixtures, "stories260K")
    ctl = os.path.join(bin_dir, "calderactl")
    with tempfile.TemporaryDirectory() as tmp:
        rows = eval_rows(os.path.join(model, "eval.safetensors"), SEQS)
        rows_path = os.path.join(tmp, "rows.json")
        json.dump(rows, open(rows_path, "w"))
        # The same rows as a token file for calderactl eval.
        tokens = os.path.join(tmp, "eval.safetensors")
        header = json.dumps({"input_ids": {"dtype": "I32", "shape": [len(rows), len(rows[0])],
                                           "data_offsets": [0, 4 * len(rows) * len(rows[0])]}})
        header += " " * (-len(header) % 8)
        with open(tokens, "wb") as f:
            f.write(struct.pack("<Q", len(header)) + header.encode())
            for row in rows:
                f.write(struct.pack(f"<{len(row)}i", *row))
        out = os.path.join(tmp, "q4_0")
        run([ctl, "compress", "--model", model, "--calibration",
             os.path.join(model, "calibration.safetensors"), "--out", out, "--serve", "llamacpp",
             "--modules", MODULES, "--workers", "2"])
        ours = json.loads(run([ctl, "eval", "--json", "--model", out, "--tokens", tokens]))
        path = os.path.join(tmp, "q4_0.gguf")
        run([ctl, "export", "--format", "gguf", "--model", out, "--out", path])
        theirs = json.loads(run([py, os.path.abspath(__file__), "--inner", path,
                                 rows_path]).strip().splitlines()[-1])
        print(f"Q4_0: calderactl eval {ours['perplexity']:.6f}, llama.cpp "
              f"{theirs['perplexity']:.6f}; llama.cpp generates: {theirs['text']!r}")
        rel = abs(theirs["perplexity"] - ours["perplexity"]) / ours["perplexity"]
        if rel > 0.01:
            print(f"FAIL: llama.cpp's perplexity differs by {rel:.2%} (more than 1%)")
            return 1
        if len(theirs["text"].split()) < 3:
            print("FAIL: llama.cpp generated no text")
            return 1
        # llama.cpp's tokenizer from our metadata gives our tokenizer's ids.
        text_file = os.path.join(tmp, "t.txt")
        open(text_file, "w").write("Once upon a time, a little girl")
        ids_file = os.path.join(tmp, "t.safetensors")
        run([ctl, "tokenize", "--model", model, "--input", text_file, "--seq-len",
             str(len(theirs["tokens"])), "--out", ids_file])
        want = eval_rows(ids_file, 1)[0]
        if want != theirs["tokens"]:
            print(f"FAIL: llama.cpp tokenizes to {theirs['tokens']}, ours to {want}")
            return 1
        print(f"within {rel:.3%}; tokenization equal ({len(want)} ids)")
        # CALDERA (Q + L·R): the base plus the GGUF LoRA adapter, applied by llama.cpp.
        out = os.path.join(tmp, "caldera")
        run([ctl, "compress", "--model", model, "--calibration",
             os.path.join(model, "calibration.safetensors"), "--out", out, "--method",
             "caldera", "--rank", "4", "--quantizer", "int", "--q-bits", "4", "--q-group-size", "32",
             "--incoherence", "none", "--lr-bits", "16", "--iters", "2", "--lplr-iters", "2",
             "--modules", MODULES, "--workers", "2"])
        ours = json.loads(run([ctl, "eval", "--json", "--model", out, "--tokens", tokens]))
        path = os.path.join(tmp, "caldera.gguf")
        run([ctl, "export", "--format", "gguf", "--model", out, "--out", path])
        theirs = json.loads(run([py, os.path.abspath(__file__), "--inner", path, rows_path,
                                 os.path.join(tmp, "caldera.lora.gguf")]).strip().splitlines()[-1])
        rel = abs(theirs["perplexity"] - ours["perplexity"]) / ours["perplexity"]
        print(f"Q4_0 + LoRA adapter (rank 4): calderactl eval {ours['perplexity']:.6f}, "
              f"llama.cpp {theirs['perplexity']:.6f} (within {rel:.3%})")
        if rel > 0.01:
            print(f"FAIL: llama.cpp with the adapter differs by {rel:.2%} (more than 1%)")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
