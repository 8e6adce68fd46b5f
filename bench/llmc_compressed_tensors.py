#!/usr/bin/env python3
"""llm-compressor's own compressed-tensors output of the bundled model, for the format
parity test and the figures of docs/format/compressed-tensors.md.

Usage (the python of a venv with `pip install llmcompressor`, which brings
compressed-tensors, transformers and torch):
    llmc_compressed_tensors.py OUT_ROOT [SCHEME ...]

SCHEME (default: both):
  w4g64  GPTQ W4A16 symmetric, group 64 for the 64-wide q/k/v/o/gate/up (the bundled
         model's rows are 64 wide, so group 128 -- one group per row -- is refused by
         compressed-tensors, which needs columns % group_size == 0; group 64 is the same
         grid) and one scale per row for down_proj (172 columns: no group of 32/64/128
         divides it)
  w4pc   GPTQ W4A16 symmetric, one scale per row (strategy channel) everywhere

For each, OUT_ROOT/<scheme>/ is the folder `model.save_pretrained(save_compressed=True)`
writes (pack-quantized), and OUT_ROOT/<scheme>/result.json holds the perplexity of the
compressed folder loaded by a fresh `AutoModelForCausalLM.from_pretrained` on the bundled
eval set and its bytes on disk. Calibration as /work/shared/peers/run_llmc.py (GPTQ
defaults, 128 sequences of the bundled calibration set). One line per scheme:
RESULT <scheme> ppl=<perplexity> bytes=<bytes of the safetensors files> total=<all files>.
"""
import json
import math
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.environ.get("LLMC_MODEL", os.path.join(HERE, "..", "models", "stories260K"))
RE_64WIDE = [r"re:.*self_attn\.(q|k|v|o)_proj$", r"re:.*mlp\.(gate|up)_proj$"]
RE_DOWN = [r"re:.*mlp\.down_proj$"]


def ids(name):
    from safetensors.torch import load_file

    return load_file(os.path.join(MODEL_DIR, name))["input_ids"].long()


def perplexity(model, x_all, batch=16):
    import torch
    import torch.nn.functional as F

    total, count = 0.0, 0
    model.eval()
    with torch.no_grad():
        for i in range(0, x_all.shape[0], batch):
            x = x_all[i : i + batch]
            logits = model(input_ids=x).logits.float()
            total += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                     x[:, 1:].reshape(-1), reduction="sum").item()
            count += x[:, 1:].numel()
    return math.exp(total / count)


def tokenizer():
    """oneshot() wants a processor even for tokenized data: a WordLevel one over the
    model's piece list (never used to tokenize)."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import PreTrainedTokenizerFast

    with open(os.path.join(MODEL_DIR, "tokenizer_vocab.json")) as f:
        pieces = [p["piece"] for p in json.load(f)]
    vocab = {}
    for i, p in enumerate(pieces):
        vocab.setdefault(p, i)
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>",
                                   bos_token=pieces[1], eos_token=pieces[2])


def recipe(scheme):
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from llmcompressor.modifiers.quantization import GPTQModifier

    def w(strategy, group=None):
        kw = dict(num_bits=4, type="int", symmetric=True, strategy=strategy)
        if group:
            kw["group_size"] = group
        return QuantizationArgs(**kw)

    if scheme == "w4g64":
        groups = {"group_0": QuantizationScheme(targets=RE_64WIDE, weights=w("group", 64)),
                  "group_1": QuantizationScheme(targets=RE_DOWN, weights=w("channel"))}
    else:
        groups = {"group_0": QuantizationScheme(targets=["Linear"], weights=w("channel"))}
    return GPTQModifier(config_groups=groups, ignore=["lm_head"])


def run(out_root, scheme):
    import torch
    from datasets import Dataset
    from llmcompressor import oneshot
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    torch.manual_seed(0)
    out = os.path.join(out_root, scheme)
    model = AutoModelForCausalLM.from_pretrained(MODEL_DIR, dtype=torch.float32)
    cal = ids("calibration.safetensors")
    ds = Dataset.from_dict({"input_ids": cal.tolist(),
                            "attention_mask": torch.ones_like(cal).tolist()})
    oneshot(model=model, processor=tokenizer(), dataset=ds, recipe=recipe(scheme),
            max_seq_length=cal.shape[1], num_calibration_samples=cal.shape[0])
    model.save_pretrained(out, save_compressed=True)
    del model
    reloaded = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    ppl = perplexity(reloaded, ids("eval.safetensors"))
    st = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out)
             if f.endswith(".safetensors"))
    total = sum(os.path.getsize(os.path.join(out, f)) for f in os.listdir(out))
    with open(os.path.join(out, "result.json"), "w") as f:
        json.dump({"scheme": scheme, "perplexity": ppl, "safetensors_bytes": st,
                   "total_bytes": total}, f, indent=1)
    print(f"RESULT {scheme} ppl={ppl:.6f} bytes={st} total={total}", flush=True)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for scheme in sys.argv[2:] or ["w4g64", "w4pc"]:
        run(sys.argv[1], scheme)


if __name__ == "__main__":
    main()
