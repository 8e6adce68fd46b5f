#!/usr/bin/env python3
"""Independent numpy reference of the Llama-family forward pass (float64), for
cross-checking the C++ implementation.

Reads a Hugging Face model directory (config.json + model.safetensors or shards
with model.safetensors.index.json; F32/F16/BF16) and a token file (int32
input_ids [samples, seq_len]), computes the logits of the first N sequences and
writes them as raw little-endian float64 [N*seq_len, vocab] to OUT.

Usage: llama_reference.py MODEL_DIR TOKENS N OUT
"""
import json
import os
import struct
import sys

import numpy as np


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        b, e = info["data_offsets"]
        raw = data[b:e]
        dt = info["dtype"]
        if dt == "F32":
            a = np.frombuffer(raw, dtype="<f4")
        elif dt == "F16":
            a = np.frombuffer(raw, dtype="<f2")
        elif dt == "BF16":
            a = (np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16).view("<f4")
        elif dt == "I32":
            a = np.frombuffer(raw, dtype="<i4")
        elif dt == "I64":
            a = np.frombuffer(raw, dtype="<i8")
        else:
            raise ValueError(dt)
        out[name] = a.reshape(info["shape"])
    return out


def load_model(d):
    cfg = json.load(open(os.path.join(d, "config.json")))
    idx = os.path.join(d, "model.safetensors.index.json")
    tensors = {}
    if os.path.exists(idx):
        for shard in sorted(set(json.load(open(idx))["weight_map"].values())):
            tensors.update(read_safetensors(os.path.join(d, shard)))
    else:
        tensors = read_safetensors(os.path.join(d, "model.safetensors"))
    return cfg, {k: v.astype(np.float64) for k, v in tensors.items()}


def inv_freqs(cfg, head_dim):
    theta = cfg.get("rope_theta", 10000.0)
    inv = 1.0 / theta ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    rs = cfg.get("rope_scaling")
    if rs:
        kind = rs.get("rope_type", rs.get("type"))
        if kind == "linear":
            inv = inv / rs["factor"]
        elif kind == "llama3":
            f, lo, hi = rs["factor"], rs["low_freq_factor"], rs["high_freq_factor"]
            old = rs["original_max_position_embeddings"]
            wl = 2 * np.pi / inv
            smooth = (old / wl - lo) / (hi - lo)
            scaled = np.where(wl > old / lo, inv / f, inv)
            mid = (wl >= old / hi) & (wl <= old / lo)
            inv = np.where(mid, (1 - smooth) * inv / f + smooth * inv, scaled)
    return inv


def rmsnorm(x, w, eps):
    return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w


def rope(x, cos, sin):  # x: [T, heads, d]
    h = x.shape[-1] // 2
    a, b = x[..., :h], x[..., h:]
    c, s = cos[:, None, :], sin[:, None, :]
    return np.concatenate([a * c - b * s, b * c + a * s], axis=-1)


def moe(cfg, W, p, h):
    """The mixture-of-experts MLP, token by token: softmax over the router
    logits, the top-k experts (ties to the lower index), weights renormalised
    for Mixtral and for Qwen3-MoE with norm_topk_prob."""
    arch = cfg["architectures"][0]
    if arch == "MixtralForCausalLM":
        m, n_exp, names, renorm = "block_sparse_moe.", cfg["num_local_experts"], ("w1", "w3", "w2"), True
    else:
        m, n_exp, names, renorm = "mlp.", cfg["num_experts"], ("gate_proj", "up_proj", "down_proj"), \
            cfg.get("norm_topk_prob", False)
    k = cfg["num_experts_per_tok"]
    logits = h @ W[p + m + "gate.weight"].T
    prob = np.exp(logits - logits.max(-1, keepdims=True))
    prob = prob / prob.sum(-1, keepdims=True)
    out = np.zeros_like(h)
    for t in range(h.shape[0]):
        top = sorted(range(n_exp), key=lambda e: (-prob[t, e], e))[:k]
        w = prob[t, top]
        if renorm:
            w = w / w.sum()
        for e, we in zip(top, w):
            x = f"{p}{m}experts.{e}."
            g = W[x + names[0] + ".weight"] @ h[t]
            u = W[x + names[1] + ".weight"] @ h[t]
            out[t] += we * (W[x + names[2] + ".weight"] @ (g / (1 + np.exp(-g)) * u))
    return out


def forward(cfg, W, ids):
    H = cfg["hidden_size"]
    nh = cfg["num_attention_heads"]
    nkv = cfg.get("num_key_value_heads", nh)
    d = cfg.get("head_dim", H // nh)
    eps = cfg.get("rms_norm_eps", 1e-6)
    bias = cfg["architectures"][0] == "Qwen2ForCausalLM" or cfg.get("attention_bias", False)
    T = len(ids)
    pos = np.arange(T, dtype=np.float64)
    ang = pos[:, None] * inv_freqs(cfg, d)[None, :].astype(np.float32).astype(np.float64)
    cos, sin = np.cos(ang), np.sin(ang)
    x = W["model.embed_tokens.weight"][ids]
    mask = np.triu(np.full((T, T), -np.inf), 1)
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        h = rmsnorm(x, W[p + "input_layernorm.weight"], eps)
        q = h @ W[p + "self_attn.q_proj.weight"].T
        k = h @ W[p + "self_attn.k_proj.weight"].T
        v = h @ W[p + "self_attn.v_proj.weight"].T
        if bias:
            q = q + W[p + "self_attn.q_proj.bias"]
            k = k + W[p + "self_attn.k_proj.bias"]
            v = v + W[p + "self_attn.v_proj.bias"]
        q = q.reshape(T, nh, d)
        k = k.reshape(T, nkv, d)
        if cfg["architectures"][0] in ("Qwen3ForCausalLM", "Qwen3MoeForCausalLM"):  # q/k head norms
            q = rmsnorm(q, W[p + "self_attn.q_norm.weight"], eps)
            k = rmsnorm(k, W[p + "self_attn.k_norm.weight"], eps)
        q = rope(q, cos, sin)
        k = rope(k, cos, sin)
        v = v.reshape(T, nkv, d)
        rep = nh // nkv
        k = np.repeat(k, rep, axis=1)
        v = np.repeat(v, rep, axis=1)
        att = np.einsum("thd,shd->hts", q, k) / np.sqrt(d) + mask
        att = np.exp(att - att.max(-1, keepdims=True))
        att = att / att.sum(-1, keepdims=True)
        o = np.einsum("hts,shd->thd", att, v).reshape(T, nh * d)
        x = x + o @ W[p + "self_attn.o_proj.weight"].T
        h = rmsnorm(x, W[p + "post_attention_layernorm.weight"], eps)
        if cfg["architectures"][0] in ("MixtralForCausalLM", "Qwen3MoeForCausalLM"):
            x = x + moe(cfg, W, p, h)
            continue
        g = h @ W[p + "mlp.gate_proj.weight"].T
        u = h @ W[p + "mlp.up_proj.weight"].T
        x = x + (g / (1 + np.exp(-g)) * u) @ W[p + "mlp.down_proj.weight"].T
    x = rmsnorm(x, W["model.norm.weight"], eps)
    head = W.get("lm_head.weight")
    if cfg.get("tie_word_embeddings", False) or head is None:
        head = W["model.embed_tokens.weight"]
    return x @ head.T


def main():
    model_dir, tokens, n, out = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
    cfg, W = load_model(model_dir)
    ids = read_safetensors(tokens)["input_ids"]
    logits = np.concatenate([forward(cfg, W, ids[i].astype(np.int64)) for i in range(n)])
    logits.astype("<f8").tofile(out)


if __name__ == "__main__":
    main()
