#!/usr/bin/env bash
# Regenerates the seed corpus tests/fuzz/corpus/<target>/ from a tiny random
# model (calderactl make-test-model), its Hessians, decomposed artifacts and a
# compressed checkpoint, plus a few hand-written and garbled (truncated,
# byte-flipped) inputs per target. The output is committed; run this only to
# refresh it:  tests/fuzz/make_seed_corpus.sh build/bin/calderactl
set -euo pipefail
ctl=${1:-build/bin/calderactl}
here=$(cd "$(dirname "$0")" && pwd)
corpus=$here/corpus
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
rm -rf "$corpus"
mkdir -p "$corpus"

"$ctl" make-test-model --out "$tmp/m" --hidden 16 --intermediate 32 --layers 1 --heads 2 \
  --kv-heads 1 --vocab 32 --tokens-out "$tmp/tokens.safetensors" --samples 2 --seq-len 8 >/dev/null
"$ctl" make-test-model --out "$tmp/sharded" --hidden 16 --intermediate 32 --layers 2 --heads 2 \
  --kv-heads 1 --vocab 32 --shards 2 --arch Qwen2ForCausalLM --llama3-rope --untied >/dev/null
"$ctl" calibrate --model "$tmp/m" --tokens "$tmp/tokens.safetensors" --out "$tmp/h" >/dev/null 2>&1
w="$tmp/m/model.safetensors:model.layers.0.self_attn.q_proj.weight"
h="$tmp/h/layer-0.hessians.safetensors:q_proj"
"$ctl" decompose --weight "$w" --hessian "$h" --rank 2 --iters 1 --lplr-iters 1 \
  --out "$tmp/a-e8p.safetensors" >/dev/null 2>&1
"$ctl" decompose --weight "$w" --hessian "$h" --rank 2 --iters 1 --lplr-iters 1 \
  --quantizer uniform --q-bits 3 --lr-bits 16 --out "$tmp/a-uniform.safetensors" >/dev/null 2>&1
"$ctl" decompose --weight "$w" --hessian "$h" --rank 2 --iters 1 --lplr-iters 1 \
  --ttlora-rank 2 --out "$tmp/a-ttlora.safetensors" >/dev/null 2>&1
"$ctl" compress --model "$tmp/m" --calibration "$tmp/tokens.safetensors" --out "$tmp/c" \
  --rank 2 --modules q_proj >/dev/null 2>&1

python3 - "$tmp" "$corpus" <<'PY'
import json, os, struct, sys
tmp, corpus = sys.argv[1], sys.argv[2]

def put(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)

def read(path):
    with open(path, "rb") as f:
        return f.read()

def header(blob):
    n = struct.unpack("<Q", blob[:8])[0]
    return json.loads(blob[8:8 + n]), 8 + n

def garbled(target, name, data):
    if isinstance(data, str):
        data = data.encode()
    put(target, name, data)
    put(target, name + ".truncated", data[: len(data) // 2])
    flipped = bytearray(data)
    for i in range(8, len(flipped), max(1, len(flipped) // 7)):
        flipped[i] ^= 0x5A
    put(target, name + ".flipped", bytes(flipped))

def safetensors(tensors, metadata=None):
    hdr, data = {}, b""
    for name, (dtype, shape, raw) in tensors.items():
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(raw)]}
        data += raw
    if metadata is not None:
        hdr["__metadata__"] = metadata
    text = json.dumps(hdr).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + data

# safetensors_header
small = safetensors({"a": ("F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4)),
                     "b": ("BF16", [3], b"\x80\x3f" * 3), "c": ("I64", [], struct.pack("<q", 7))},
                    {"format": "pt"})
garbled("safetensors_header", "small.safetensors", small)
put("safetensors_header", "empty-header.safetensors", struct.pack("<Q", 2) + b"{}")
put("safetensors_header", "huge-length.safetensors", struct.pack("<Q", 1 << 62) + b"{}")
put("safetensors_header", "zero-size.safetensors",
    safetensors({f"t{i}": ("F32", [0, 4], b"") for i in range(64)}))
put("safetensors_header", "overlap.safetensors",
    struct.pack("<Q", 96) + json.dumps({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}}
                                       ).encode().ljust(96) + b"\0" * 12)
put("safetensors_header", "bad-shape.safetensors",
    safetensors({"a": ("F32", [-1, 4], b"\0" * 16)}))
garbled("safetensors_header", "tokens.safetensors", read(os.path.join(tmp, "tokens.safetensors")))

# tokens
garbled("tokens", "tokens.safetensors", read(os.path.join(tmp, "tokens.safetensors")))
put("tokens", "i64.safetensors", safetensors({"input_ids": ("I64", [1, 3], struct.pack("<3q", 1, 2, 3))}))
put("tokens", "out-of-vocab.safetensors",
    safetensors({"input_ids": ("I32", [1, 3], struct.pack("<3i", 1, 99999, -4))}))
put("tokens", "rank1.safetensors", safetensors({"input_ids": ("I32", [3], struct.pack("<3i", 1, 2, 3))}))

# hessians
hess = read(os.path.join(tmp, "h", "layer-0.hessians.safetensors"))
garbled("hessians", "layer-0.hessians.safetensors", hess)
put("hessians", "legacy-f32.safetensors",
    safetensors({"q_proj": ("F32", [2, 2], struct.pack("<4f", 1, 0, 0, 1)),
                 "tokens": ("I64", [1], struct.pack("<q", 8))}))
put("hessians", "not-square.safetensors",
    safetensors({"q_proj": ("F64", [2, 3], b"\0" * 48)},
                {"format": "caldera.hessians.v1", "layer": "-5", "tokens": "0"}))

# matrix artifacts, their record configs and reports
for name in ("a-e8p", "a-uniform", "a-ttlora"):
    blob = read(os.path.join(tmp, name + ".safetensors"))
    garbled("matrix_artifact", name + ".safetensors", blob)
    hdr, off = header(blob)
    for key, t in hdr.items():
        if key == "__metadata__":
            for mk, mv in t.items():
                if mk == "ttlora_config":
                    garbled("ttlora_config", name + ".json", mv)
                if mk == "report":
                    garbled("matrix_record_config", name + ".report.json", mv)
            continue
        if key.endswith(".config") and t["dtype"] == "U8":
            b, e = t["data_offsets"]
            garbled("matrix_record_config", name + ".config.json", blob[off + b:off + e])
put("matrix_record_config", "wrong-types.json",
    '{"format": "caldera.matrix.v1", "rows": "8", "cols": [], "q": 3, "lr": null}')
put("ttlora_config", "bad-ranks.json",
    '{"format": "caldera.ttlora.v1", "ranks": [2, -1], "input_factors": [4], "output_factors": []}')

# config.json
garbled("model_config", "llama.json", read(os.path.join(tmp, "m", "config.json")))
garbled("model_config", "qwen2-llama3-rope.json", read(os.path.join(tmp, "sharded", "config.json")))
cfg = json.loads(read(os.path.join(tmp, "m", "config.json")))
cfg["num_hidden_layers"] = 5000
cfg["hidden_size"] = "16"
put("model_config", "wrong-types.json", json.dumps(cfg))
put("model_config", "not-object.json", "[1, 2, 3]")

# quantization_config (a compressed checkpoint's config.json)
garbled("quantization_config", "compressed.json", read(os.path.join(tmp, "c", "config.json")))
cc = json.loads(read(os.path.join(tmp, "c", "config.json")))
cc["quantization_config"]["modules"] = {"x": 1}
put("quantization_config", "wrong-modules.json", json.dumps(cc))
put("quantization_config", "dense.json", read(os.path.join(tmp, "m", "config.json")))

# checkpoint index
garbled("checkpoint_index", "index.json",
        read(os.path.join(tmp, "sharded", "model.safetensors.index.json")))
put("checkpoint_index", "wrong-types.json", '{"weight_map": {"a": 3}, "metadata": {"total_size": 12}}')

# S3 ListObjectsV2 replies
listing = ('<?xml version="1.0" encoding="UTF-8"?>\n<ListBucketResult><Name>b</Name>'
           '<IsTruncated>true</IsTruncated><NextContinuationToken>tok&amp;1</NextContinuationToken>'
           '<Contents><Key>m/config.json</Key><Size>437</Size><ETag>&quot;abc&quot;</ETag></Contents>'
           '<Contents><Key>m/a&lt;b&gt;.safetensors</Key><Size>99999999999999999999</Size></Contents>'
           '</ListBucketResult>')
garbled("s3_xml", "listing.xml", listing)
put("s3_xml", "unclosed.xml", "<Contents><Key>a</Key><Contents><Size>1")
put("s3_xml", "entities.xml", "<Contents><Key>&amp;&#65;&#x42;&#xFFFFFFFF;&bogus;&</Key></Contents>")
PY
# Tokenizer files (tokenizer.json, tokenizer.model), trained with the reference packages.
"$here/../../.venv/bin/python" "$here/make_tokenizer_seeds.py" "$corpus"
find "$corpus" -type f | wc -l
