#!/usr/bin/env python3
"""`calderactl export --format compressed-tensors` is exact (issue 32): read with numpy
alone -- no torch, so CI runs it -- the exported base dequantizes, by the format's own
rule (docs/format/compressed-tensors.md: int32 words, codes LSB first offset by
2^(bits-1), W = (q - 0)·scale), to our Q to the last bit in float32, and base + the
LoRA adapter's B·A is the compressed model.

  * an LDLQ checkpoint made with --serve vllm (Q only): every exported linear, dequantized
    here, equals `export --format dense` (our Ŵ = Q) bit for bit;
  * a CALDERA one (Q + L·R, rank 4): dequantized base + lora_B @ lora_A equals the dense
    export within float32 rounding of the product (the adapter holds the fp16 factors
    exactly), and the scale and packed tensors have the dtypes and shapes of the format.

CALDERA_BIN_DIR: the build's bin/. CALDERA_FIXTURES_DIR: the folder holding stories260K/.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DTYPES = {"F32": np.float32, "F16": np.float16, "I32": np.int32, "I64": np.int64,
          "U8": np.uint8, "BF16": None}


def read_safetensors(path):
    """{name: numpy array} of a safetensors file (BF16 left out: not used here)."""
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or DTYPES[info["dtype"]] is None:
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=DTYPES[info["dtype"]]).reshape(info["shape"])
    return out


def read_folder(path):
    tensors = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(path, f)))
    return tensors


def dequantize(t, prefix):
    """The format's rule, written from docs/format/compressed-tensors.md."""
    packed = t[prefix + ".weight_packed"]
    scale = t[prefix + ".weight_scale"].astype(np.float32)
    rows, cols = (int(v) for v in t[prefix + ".weight_shape"])
    words = packed.shape[1]
    bits = next(b for b in (4, 8) if (cols * b + 31) // 32 == words)
    # Each row's words as one little-endian bit stream; code c = bits [c·b, c·b + b).
    stream = np.unpackbits(packed.astype("<i4").view(np.uint8).reshape(rows, -1), axis=1,
                           bitorder="little")
    weights = (1 << np.arange(bits)).astype(np.int64)
    codes = stream[:, : cols * bits].reshape(rows, cols, bits).astype(np.int64) @ weights
    q = codes.astype(np.int32) - (1 << (bits - 1))
    group = cols // scale.shape[1]
    return q.astype(np.float32) * np.repeat(scale, group, axis=1)


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def check(ctl, model, tmp, name, flags, with_adapter):
    out = os.path.join(tmp, name)
    run([ctl, "compress", "--model", model, "--calibration",
         os.path.join(model, "calibration.safetensors"), "--out", out, "--serve", "vllm",
         "--iters", "1", "--lplr-iters", "1", "--workers", "2"] + flags)
    ct, dense = os.path.join(tmp, name + "-ct"), os.path.join(tmp, name + "-dense")
    run([ctl, "export", "--format", "compressed-tensors", "--dtype", "f32", "--model", out,
         "--out", ct])
    run([ctl, "export", "--format", "dense", "--model", out, "--out", dense])
    base, ref = read_folder(os.path.join(ct, "base")), read_folder(dense)
    adapter = {}
    if with_adapter:
        adapter = read_safetensors(os.path.join(ct, "adapter", "adapter_model.safetensors"))
    elif os.path.exists(os.path.join(ct, "adapter")):
        sys.exit(f"{name}: an adapter folder for a checkpoint without L·R")
    config = json.load(open(os.path.join(ct, "base", "config.json")))["quantization_config"]
    assert config["quant_method"] == "compressed-tensors", config
    assert config["format"] == "pack-quantized", config
    worst, count = 0.0, 0
    for key, w in ref.items():
        if not key.endswith("_proj.weight"):
            continue
        prefix = key[: -len(".weight")]
        if prefix + ".weight_packed" not in base:
            sys.exit(f"{name}: {prefix} was not packed")
        assert base[prefix + ".weight_packed"].dtype == np.int32
        assert base[prefix + ".weight_scale"].dtype == np.float32
        assert list(base[prefix + ".weight_shape"]) == list(w.shape)
        q = dequantize(base, prefix)
        lora = "base_model.model." + prefix
        if with_adapter:
            a = adapter[lora + ".lora_A.weight"]
            b = adapter[lora + ".lora_B.weight"]
            diff = np.abs(q + b @ a - w).max() / np.abs(w).max()
            worst = max(worst, float(diff))
            if diff > 1e-6:
                sys.exit(f"{name}: {prefix}: base + B·A differs from Ŵ by {diff:.2e} relative")
        elif not np.array_equal(q, w):
            bad = np.argwhere(q != w)[0]
            sys.exit(f"{name}: {prefix}: dequantized {q[tuple(bad)]!r} != Q {w[tuple(bad)]!r} "
                     f"at {tuple(bad)}")
        count += 1
    print(f"{name}: {count} linears, "
          + ("base + B·A vs Ŵ max relative difference %.2e" % worst if with_adapter
             else "dequantized == Q bit for bit"))


def main():
    bin_dir = os.environ.get("CALDERA_BIN_DIR") or sys.exit("CALDERA_BIN_DIR is not set")
    fixtures = os.environ.get("CALDERA_FIXTURES_DIR") or os.path.join(HERE, "..", "..", "models")
    model = os.path.join(fixtures, "stories260K")
    ctl = os.path.join(bin_dir, "calderactl")
    with tempfile.TemporaryDirectory() as tmp:
        # q_group_size 65536: one scale per row, so down_proj's 172 columns are served too.
        check(ctl, model, tmp, "ldlq", ["--method", "ldlq", "--q-group-size", "65536"], False)
        check(ctl, model, tmp, "caldera", ["--rank", "4", "--q-group-size", "65536"], True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
