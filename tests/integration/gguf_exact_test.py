#!/usr/bin/env python3
"""`calderactl export --format gguf` is exact (issue 34), checked with the `gguf` package
from PyPI -- llama.cpp's own Python reader and numpy dequantizers, no llama.cpp build, so
CI runs it:

  * an LDLQ checkpoint on the int grid at group 32 (4 and 8 bits): every linear in the
    GGUF file dequantizes (gguf.quants.dequantize) to our Q (`export --format dense`) bit
    for bit, after undoing llama's q/k row order for RoPE; its type is Q4_0 / Q8_0; the
    embedding and norms are the model's own; the architecture and tokenizer metadata that
    llama.cpp reads are there with the model's values;
  * `compress --serve llamacpp` (down_proj left out with --modules, as the 172-column
    refusal says): exports without --dense-fallback, every compressed linear Q4_0, and
    report.json's storage bits are the GGUF bytes of those linears plus the 32-bit
    global scale each record holds;
  * make-test-model checkpoints exported dense: a Qwen2 with q/k/v biases and an untied
    lm_head (architecture qwen2: no q/k reordering, biases and output.weight as the
    model's) and a Llama with Llama 3 rope scaling (rope_freqs.weight: the factors
    computed here from the config, as transformers' llama3 rope init scales frequencies);
  * Q4_K: a make-test-model Llama of rows that are multiples of 256, compressed with
    `--serve llamacpp --quantizer q4k`: every linear is Q4_K and dequantizes (gguf's own
    Q4_K dequantizer) to our Q bit for bit;
  * L·R: a CALDERA checkpoint (rank 4, int4 Q at group 32): the base holds Q exactly and
    the GGUF LoRA adapter beside it (general.type adapter, adapter.lora.alpha 0) holds
    lora_a = R, lora_b = L so that Q + B·A is the compressed weight; --merge-lr writes
    Q + L·R dense in the base and no adapter;
  * hostile input: down_proj's 172 columns are no whole number of 32-blocks, so the
    export without --dense-fallback fails naming that matrix and the fix, and writes
    nothing; with --dense-fallback it is written F32 (Q exactly); an existing --out is
    refused.

CALDERA_BIN_DIR: the build's bin/. CALDERA_FIXTURES_DIR: the folder holding stories260K/.
"""
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np

try:
    import gguf
    from gguf.quants import dequantize
except ImportError:
    print("SKIP: the gguf package is missing: .venv/bin/pip install -r "
          "scripts/python-test-requirements.txt")
    sys.exit(77)

HERE = os.path.dirname(os.path.abspath(__file__))
LINEARS = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
           "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
           "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__" or info["dtype"] != "F32":
            continue
        a, b = info["data_offsets"]
        out[name] = np.frombuffer(data[a:b], dtype=np.float32).reshape(info["shape"])
    return out


def read_folder(path):
    tensors = {}
    for f in sorted(os.listdir(path)):
        if f.endswith(".safetensors"):
            tensors.update(read_safetensors(os.path.join(path, f)))
    return tensors


def run(args, ok=True):
    r = subprocess.run(args, capture_output=True, text=True)
    if ok and r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def unpermute(w, heads):
    """Inverse of convert_hf_to_gguf.py's permute (rows 2i + j <- j·d/2 + i per head),
    written independently: the GGUF row order back to Hugging Face's."""
    rows = w.shape[0]
    d = rows // heads
    return w.reshape(heads, d // 2, 2, -1).swapaxes(1, 2).reshape(w.shape)


def require_exact(name, t, w, want_type, heads):
    """The GGUF tensor `t` is of `want_type` and dequantizes (gguf's own dequantizer; q/k
    rows back in Hugging Face's order when `heads`) to `w` bit for bit."""
    if t.tensor_type != want_type:
        sys.exit(f"{name}: {t.name} is {t.tensor_type.name}, want {want_type.name}")
    q = dequantize(t.data, t.tensor_type).reshape(w.shape).astype(np.float32)
    if heads:
        q = unpermute(q, heads)
    if not np.array_equal(q, w):
        bad = np.argwhere(q != w)[0]
        sys.exit(f"{name}: {t.name}: dequantized {q[tuple(bad)]!r} != Q {w[tuple(bad)]!r} "
                 f"at {tuple(bad)}")


def field(reader, key):
    f = reader.fields.get(key)
    if f is None:
        sys.exit(f"metadata key {key} is missing")
    return f.contents()


def check(ctl, model, tmp, bits):
    name = f"int{bits}"
    out = os.path.join(tmp, name)
    run([ctl, "compress", "--model", model, "--calibration",
         os.path.join(model, "calibration.safetensors"), "--out", out, "--method", "ldlq",
         "--quantizer", "int", "--q-bits", str(bits), "--q-group-size", "32",
         "--incoherence", "none", "--workers", "2"])
    dense = os.path.join(tmp, name + "-dense")
    run([ctl, "export", "--format", "dense", "--model", out, "--out", dense])
    ref = read_folder(dense)
    path = os.path.join(tmp, name + ".gguf")

    # Hostile: down_proj (172 columns) has no exact block type; nothing is written.
    r = run([ctl, "export", "--format", "gguf", "--model", out, "--out", path], ok=False)
    msg = r.stderr + r.stdout
    for want in ("model.layers.0.mlp.down_proj", "172 columns", "--dense-fallback",
                 "--serve llamacpp"):
        if r.returncode == 0 or want not in msg:
            sys.exit(f"{name}: the export of a 172-column down_proj did not refuse naming "
                     f"{want!r} (rc {r.returncode}):\n{msg}")
    if os.path.exists(path):
        sys.exit(f"{name}: a refused export left {path}")

    run([ctl, "export", "--format", "gguf", "--dense-fallback", "--dtype", "f32",
         "--model", out, "--out", path])
    r = run([ctl, "export", "--format", "gguf", "--dense-fallback", "--model", out,
             "--out", path], ok=False)
    if r.returncode == 0 or "already exists" not in r.stderr:
        sys.exit(f"{name}: an export over an existing file was not refused:\n{r.stderr}")

    reader = gguf.GGUFReader(path)
    config = json.load(open(os.path.join(model, "config.json")))
    want_meta = {
        "general.architecture": "llama", "general.alignment": 32,
        "llama.context_length": config["max_position_embeddings"],
        "llama.embedding_length": config["hidden_size"],
        "llama.block_count": config["num_hidden_layers"],
        "llama.feed_forward_length": config["intermediate_size"],
        "llama.attention.head_count": config["num_attention_heads"],
        "llama.attention.head_count_kv": config["num_key_value_heads"],
        "llama.rope.dimension_count": config["hidden_size"] // config["num_attention_heads"],
        "llama.vocab_size": config["vocab_size"],
        "tokenizer.ggml.model": "llama",
        "tokenizer.ggml.bos_token_id": config["bos_token_id"],
        "tokenizer.ggml.eos_token_id": config["eos_token_id"],
    }
    for key, value in want_meta.items():
        if field(reader, key) != value:
            sys.exit(f"{name}: {key} = {field(reader, key)!r}, want {value!r}")
    for key, value in (("llama.rope.freq_base", config["rope_theta"]),
                       ("llama.attention.layer_norm_rms_epsilon", config["rms_norm_eps"])):
        if abs(field(reader, key) - value) > 1e-6 * value:
            sys.exit(f"{name}: {key} = {field(reader, key)!r}, want {value!r}")
    vocab = json.load(open(os.path.join(model, "tokenizer_vocab.json")))
    tokens = field(reader, "tokenizer.ggml.tokens")
    types = field(reader, "tokenizer.ggml.token_type")
    scores = field(reader, "tokenizer.ggml.scores")
    if len(tokens) != len(vocab) or len(types) != len(vocab) or len(scores) != len(vocab):
        sys.exit(f"{name}: {len(tokens)} tokens for a vocabulary of {len(vocab)}")
    if tokens[1] != "<s>" or types[1] != 3 or types[0] != 2 or types[3] != 6:
        sys.exit(f"{name}: special and byte tokens are wrong: {tokens[:4]} {types[:4]}")
    i = next(k for k, v in enumerate(vocab) if v["piece"].startswith(" ") and k > 258)
    if tokens[i] != "\u2581" + vocab[i]["piece"][1:] or scores[i] != np.float32(vocab[i]["score"]):
        sys.exit(f"{name}: piece {i} {vocab[i]['piece']!r} became {tokens[i]!r}")

    tensors = {t.name: t for t in reader.tensors}
    heads = {"attn_q": config["num_attention_heads"], "attn_k": config["num_key_value_heads"]}
    want_type = gguf.GGMLQuantizationType.Q4_0 if bits == 4 else gguf.GGMLQuantizationType.Q8_0
    count = 0
    for layer in range(config["num_hidden_layers"]):
        for short, hf in LINEARS.items():
            expect = gguf.GGMLQuantizationType.F32 if short == "ffn_down" else want_type
            require_exact(name, tensors[f"blk.{layer}.{short}.weight"],
                          ref[f"model.layers.{layer}.{hf}.weight"], expect, heads.get(short))
            count += 1
        norm = tensors[f"blk.{layer}.attn_norm.weight"]
        if not np.array_equal(norm.data, ref[f"model.layers.{layer}.input_layernorm.weight"]):
            sys.exit(f"{name}: blk.{layer}.attn_norm differs from the model's")
    emb = tensors["token_embd.weight"]
    if not np.array_equal(np.asarray(emb.data).reshape(-1), ref["model.embed_tokens.weight"].reshape(-1)):
        sys.exit(f"{name}: token_embd differs from the model's embedding")
    if "output.weight" in tensors:
        sys.exit(f"{name}: a tied model got an output tensor")
    print(f"{name}: {count} linears dequantized by gguf == Q bit for bit "
          f"({want_type.name}; ffn_down F32), metadata and tokenizer as the model's")


def check_served(ctl, model, tmp):
    out = os.path.join(tmp, "served")
    r = run([ctl, "compress", "--model", model, "--calibration",
             os.path.join(model, "calibration.safetensors"), "--out", out, "--serve",
             "llamacpp", "--workers", "2"], ok=False)
    if r.returncode == 0 or "down_proj has 172 input columns" not in r.stderr:
        sys.exit(f"--serve llamacpp did not refuse the 172-column down_proj:\n{r.stderr}")
    run([ctl, "compress", "--model", model, "--calibration",
         os.path.join(model, "calibration.safetensors"), "--out", out, "--serve", "llamacpp",
         "--modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj", "--workers", "2"])
    path = os.path.join(tmp, "served.gguf")
    run([ctl, "export", "--format", "gguf", "--model", out, "--out", path])
    reader = gguf.GGUFReader(path)
    q4 = [t for t in reader.tensors if t.tensor_type == gguf.GGMLQuantizationType.Q4_0]
    totals = json.load(open(os.path.join(out, "report.json")))["totals"]
    if len(q4) != totals["matrices"] or len(q4) != 30:
        sys.exit(f"served: {len(q4)} Q4_0 tensors for {totals['matrices']} compressed linears")
    gguf_bits = 8 * sum(int(t.n_bytes) for t in q4)
    if totals["storage_bits"] != gguf_bits + 32 * len(q4):
        sys.exit(f"served: report.json counts {totals['storage_bits']} bits, the GGUF file "
                 f"{gguf_bits} (+32 per record)")
    print(f"served: {len(q4)} linears Q4_0, report.json bits = GGUF bits {gguf_bits} "
          f"+ 32 per record ({totals['bits_per_param']:.4f} b)")


def check_test_models(ctl, model, tmp):
    import math
    import shutil
    for arch, flags in (("Qwen2ForCausalLM", ["--bias", "--untied"]),
                        ("LlamaForCausalLM", ["--llama3-rope"])):
        d = os.path.join(tmp, arch)
        run([ctl, "make-test-model", "--out", d, "--arch", arch, "--hidden", "64",
             "--intermediate", "128", "--layers", "2", "--heads", "4", "--kv-heads", "2",
             "--vocab", "512"] + flags)
        shutil.copy(os.path.join(model, "tokenizer_vocab.json"), d)
        path = os.path.join(tmp, arch + ".gguf")
        run([ctl, "export", "--format", "gguf", "--dtype", "f32", "--model", d, "--out", path])
        reader = gguf.GGUFReader(path)
        src = read_folder(d)
        config = json.load(open(os.path.join(d, "config.json")))
        tensors = {t.name: np.asarray(t.data).reshape(-1) for t in reader.tensors}
        name = "qwen2" if arch.startswith("Qwen2") else "llama"
        if field(reader, "general.architecture") != name:
            sys.exit(f"{arch}: architecture {field(reader, 'general.architecture')}")
        if field(reader, f"{name}.attention.head_count_kv") != 2:
            sys.exit(f"{arch}: {name}.attention.head_count_kv missing or wrong")
        q = tensors["blk.1.attn_q.weight"].reshape(64, 64)
        hf_q = src["model.layers.1.self_attn.q_proj.weight"]
        if name == "llama":
            q = unpermute(q, 4)
        if not np.array_equal(q, hf_q):
            sys.exit(f"{arch}: blk.1.attn_q is not q_proj in llama.cpp's row order")
        if name == "qwen2":
            for b in ("q", "k", "v"):
                if not np.array_equal(tensors[f"blk.0.attn_{b}.bias"],
                                      src[f"model.layers.0.self_attn.{b}_proj.bias"]):
                    sys.exit(f"{arch}: blk.0.attn_{b}.bias differs from the model's")
            if not np.array_equal(tensors["output.weight"], src["lm_head.weight"].reshape(-1)):
                sys.exit(f"{arch}: output.weight differs from lm_head")
        else:
            rs = config["rope_scaling"]
            hd = config["hidden_size"] // config["num_attention_heads"]
            old = rs["original_max_position_embeddings"]
            want = []
            for i in range(hd // 2):
                wavelen = 2 * math.pi * config["rope_theta"] ** (2 * i / hd)
                if wavelen < old / rs["high_freq_factor"]:
                    want.append(1.0)
                elif wavelen > old / rs["low_freq_factor"]:
                    want.append(rs["factor"])
                else:
                    smooth = (old / wavelen - rs["low_freq_factor"]) / (
                        rs["high_freq_factor"] - rs["low_freq_factor"])
                    want.append(1 / ((1 - smooth) / rs["factor"] + smooth))
            got = tensors.get("rope_freqs.weight")
            if got is None or not np.allclose(got, want, rtol=1e-6):
                sys.exit(f"{arch}: rope_freqs.weight {got} != {want}")
        print(f"{arch}: {name} metadata, q in llama.cpp's row order"
              + (", biases and output.weight as the model's" if name == "qwen2"
                 else ", rope_freqs as Llama 3's scaling"))


def check_q4k(ctl, model, tmp):
    import shutil
    d = os.path.join(tmp, "q4k-model")
    tokens = os.path.join(tmp, "q4k-tokens.safetensors")
    run([ctl, "make-test-model", "--out", d, "--hidden", "256", "--intermediate", "512",
         "--layers", "1", "--heads", "4", "--kv-heads", "2", "--vocab", "512",
         "--tokens-out", tokens, "--samples", "8", "--seq-len", "64"])
    shutil.copy(os.path.join(model, "tokenizer_vocab.json"), d)
    out = os.path.join(tmp, "q4k")
    run([ctl, "compress", "--model", d, "--calibration", tokens, "--out", out, "--serve",
         "llamacpp", "--quantizer", "q4k", "--workers", "2"])
    dense = os.path.join(tmp, "q4k-dense")
    run([ctl, "export", "--format", "dense", "--model", out, "--out", dense])
    ref = read_folder(dense)
    path = os.path.join(tmp, "q4k.gguf")
    run([ctl, "export", "--format", "gguf", "--model", out, "--out", path])
    reader = gguf.GGUFReader(path)
    tensors = {t.name: t for t in reader.tensors}
    heads = {"attn_q": 4, "attn_k": 2}
    for short, hf in LINEARS.items():
        require_exact("q4k", tensors[f"blk.0.{short}.weight"], ref[f"model.layers.0.{hf}.weight"],
                      gguf.GGMLQuantizationType.Q4_K, heads.get(short))
    totals = json.load(open(os.path.join(out, "report.json")))["totals"]
    print(f"q4k: 7 linears Q4_K dequantized by gguf == Q bit for bit "
          f"({totals['bits_per_param']:.4f} b)")


def check_lora(ctl, model, tmp):
    out = os.path.join(tmp, "lr")
    run([ctl, "compress", "--model", model, "--calibration",
         os.path.join(model, "calibration.safetensors"), "--out", out, "--method", "caldera",
         "--rank", "4", "--quantizer", "int", "--q-bits", "4", "--q-group-size", "32",
         "--incoherence", "none", "--lr-bits", "16", "--iters", "1", "--lplr-iters", "1",
         "--modules", "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj", "--workers", "2"])
    dense = os.path.join(tmp, "lr-dense")
    run([ctl, "export", "--format", "dense", "--model", out, "--out", dense])
    ref = read_folder(dense)
    path = os.path.join(tmp, "lr.gguf")
    run([ctl, "export", "--format", "gguf", "--model", out, "--out", path])
    adapter = gguf.GGUFReader(os.path.join(tmp, "lr.lora.gguf"))
    for key, value in (("general.type", "adapter"), ("adapter.type", "lora"),
                       ("adapter.lora.alpha", 0.0), ("general.architecture", "llama")):
        if field(adapter, key) != value:
            sys.exit(f"lora: {key} = {field(adapter, key)!r}, want {value!r}")
    base = {t.name: t for t in gguf.GGUFReader(path).tensors}
    lora = {t.name: t for t in adapter.tensors}
    heads = {"attn_q": 8, "attn_k": 4}
    worst, count = 0.0, 0
    for layer in range(5):
        for short, hf in LINEARS.items():
            if short == "ffn_down":
                continue
            w = ref[f"model.layers.{layer}.{hf}.weight"]
            t = base[f"blk.{layer}.{short}.weight"]
            if t.tensor_type != gguf.GGMLQuantizationType.Q4_0:
                sys.exit(f"lora: {t.name} is {t.tensor_type.name}, want Q4_0")
            a, b = lora[t.name + ".lora_a"], lora[t.name + ".lora_b"]
            if int(a.shape[1]) != 4 or int(b.shape[0]) != 4:
                sys.exit(f"lora: {t.name}'s adapter is not of rank 4: {a.shape} {b.shape}")
            A = np.asarray(a.data, np.float32).reshape(int(a.shape[1]), int(a.shape[0]))
            B = np.asarray(b.data, np.float32).reshape(int(b.shape[1]), int(b.shape[0]))
            full = dequantize(t.data, t.tensor_type).reshape(w.shape).astype(np.float32) + B @ A
            if short in heads:
                full = unpermute(full, heads[short])
            worst = max(worst, float(np.abs(full - w).max() / np.abs(w).max()))
            count += 1
    if worst > 1e-6:
        sys.exit(f"lora: Q + B·A differs from the compressed weight by {worst:.2e} relative")
    merged = os.path.join(tmp, "lr-merged.gguf")
    run([ctl, "export", "--format", "gguf", "--merge-lr", "--model", out, "--out", merged])
    if os.path.exists(os.path.join(tmp, "lr-merged.lora.gguf")):
        sys.exit("lora: --merge-lr wrote an adapter")
    t = {t.name: t for t in gguf.GGUFReader(merged).tensors}["blk.0.attn_v.weight"]
    w = ref["model.layers.0.self_attn.v_proj.weight"]
    if t.tensor_type != gguf.GGMLQuantizationType.F32 or not np.array_equal(
            np.asarray(t.data).reshape(w.shape), w):
        sys.exit("lora: --merge-lr did not write Q + L·R dense")
    print(f"lora: {count} linears Q4_0 + adapter (rank 4): Q + B·A == compressed weight "
          f"(max relative difference {worst:.1e}); --merge-lr writes them dense")


def main():
    bin_dir = os.environ.get("CALDERA_BIN_DIR") or sys.exit("CALDERA_BIN_DIR is not set")
    fixtures = os.environ.get("CALDERA_FIXTURES_DIR") or os.path.join(HERE, "..", "..", "models")
    model = os.path.join(fixtures, "stories260K")
    ctl = os.path.join(bin_dir, "calderactl")
    with tempfile.TemporaryDirectory() as tmp:
        check(ctl, model, tmp, 4)
        check(ctl, model, tmp, 8)
        check_served(ctl, model, tmp)
        check_test_models(ctl, model, tmp)
        check_q4k(ctl, model, tmp)
        check_lora(ctl, model, tmp)
    return 0


if __name__ == "__main__":
    sys.exit(main())
