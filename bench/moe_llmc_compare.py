#!/usr/bin/env python3
"""Perplexity of a random-weight Qwen3-MoE-shaped test model compressed by us
(calderactl compress --target-bits B) and by llm-compressor's GPTQ (symmetric
int, group 32, fp16 scales: B = bits + 16/32), at two budgets (issue 38).

Random weights: the model predicts nothing, so its perplexity is near the
vocabulary size and what a method preserves is the random function, not
language; the figures compare how closely each method reproduces the original
outputs at a given budget, not quality on text.

Runs with the torch venv (transformers 5, llmcompressor 0.14):
    /work/hfvenv/bin/python bench/moe_llmc_compare.py --bin-dir build/bin [--work DIR]
Prints one line per (method, budget) and a JSON summary last.
"""
import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

MODEL = ["--arch", "Qwen3MoeForCausalLM", "--hidden", "128", "--intermediate", "256",
         "--heads", "4", "--kv-heads", "2", "--head-dim", "32", "--layers", "2",
         "--experts", "8", "--experts-per-token", "2", "--moe-intermediate", "64",
         "--norm-topk-prob", "--vocab", "512", "--untied"]
BUDGETS = [(4, 4.5), (3, 3.5)]  # (GPTQ bits with group 32, bits per weight)


def run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r.stdout


def scores(model, ids, original_dir):
    """(perplexity, mean KL(original || model) per token in nats): the KL says
    how closely the compressed model reproduces the original's next-token
    distributions, which on random weights means more than the perplexity."""
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM

    original = AutoModelForCausalLM.from_pretrained(original_dir, dtype=torch.float32)
    total, kl, count = 0.0, 0.0, 0
    with torch.no_grad():
        for i in range(0, ids.shape[0], 8):
            x = ids[i:i + 8]
            logits = model(input_ids=x).logits.float()
            ref = original(input_ids=x).logits.float()
            total += F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]),
                                     x[:, 1:].reshape(-1), reduction="sum").item()
            count += x[:, 1:].numel()
            # Σ p·(log p − log q) over every position, p the original's.
            kl += F.kl_div(F.log_softmax(logits, -1), F.log_softmax(ref, -1), log_target=True,
                           reduction="sum").item()
    return math.exp(total / count), kl / (ids.shape[0] * ids.shape[1])


def hf_scores(hf_dir, eval_path, original_dir):
    import torch
    from safetensors.torch import load_file
    from transformers import AutoModelForCausalLM

    torch.set_num_threads(2)
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32)
    return scores(model, load_file(eval_path)["input_ids"].long(), original_dir)


def gptq(model_dir, cal_path, eval_path, bits):
    """llm-compressor GPTQ (its defaults: dampening 0.01, block 128, act order
    static; MoE experts linearised on load and calibrated as llm-compressor's
    MoE context does) of every Linear but lm_head and the router."""
    import torch
    from compressed_tensors.quantization import QuantizationArgs, QuantizationScheme
    from datasets import Dataset
    from llmcompressor import oneshot
    from llmcompressor.modeling.moe.linearize import linearize_moe
    from llmcompressor.modifiers.quantization import GPTQModifier
    from safetensors.torch import load_file
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    torch.set_num_threads(2)
    torch.manual_seed(0)
    # Experts as one nn.Linear each (transformers 5 loads them fused); not
    # load_quantizable_moe, whose patching imports every transformers model
    # (torchvision, absent here).
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    linearize_moe(model)
    cal = load_file(cal_path)["input_ids"].long()
    ds = Dataset.from_dict({"input_ids": cal.tolist(),
                           "attention_mask": torch.ones_like(cal).tolist()})
    vocab = {f"t{i}": i for i in range(model.config.vocab_size)}
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="t0")),
                                  unk_token="t0")
    scheme = QuantizationScheme(targets=["Linear"], weights=QuantizationArgs(
        num_bits=bits, type="int", symmetric=True, strategy="group", group_size=32))
    recipe = GPTQModifier(config_groups={"g": scheme}, ignore=["lm_head", "re:.*mlp.gate$"])
    oneshot(model=model, dataset=ds, recipe=recipe, processor=tok,
            num_calibration_samples=cal.shape[0], max_seq_length=cal.shape[1])
    return scores(model, load_file(eval_path)["input_ids"].long(), model_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--work", default="")
    ap.add_argument("--inner", nargs=4, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.inner:  # one GPTQ run (bits) or one hf export's scores (-) in its own process
        m, cal, ev, bits = args.inner
        ppl, kl = hf_scores(cal, ev, m) if bits == "-" else gptq(m, cal, ev, int(bits))
        print(json.dumps({"ppl": ppl, "kl": kl}))
        return 0
    ctl = os.path.join(os.path.abspath(args.bin_dir), "calderactl")
    work = args.work or tempfile.mkdtemp(prefix="moe-llmc-")
    model = os.path.join(work, "model")
    cal, ev = os.path.join(work, "cal.safetensors"), os.path.join(work, "eval.safetensors")
    if not os.path.exists(os.path.join(model, "config.json")):
        run([ctl, "make-test-model", "--out", model, "--tokens-out", cal, "--samples", "64",
             "--seq-len", "128", "--seed", "1"] + MODEL)
        run([ctl, "make-test-model", "--out", os.path.join(work, "m2"), "--tokens-out", ev,
             "--samples", "32", "--seq-len", "128", "--seed", "2"] + MODEL)
    rows = {"original": json.loads(run([ctl, "eval", "--json", "--model", model, "--tokens",
                                        ev]))["perplexity"]}
    print(f"original: perplexity {rows['original']:.4f}")
    for bits, budget in BUDGETS:
        out = os.path.join(work, f"caldera-{budget}")
        if not os.path.exists(os.path.join(out, "report.json")):
            run([ctl, "compress", "--model", model, "--calibration", cal, "--out", out,
                 "--target-bits", str(budget)])
        report = json.load(open(os.path.join(out, "report.json")))
        hf = out + "-hf"
        if not os.path.exists(os.path.join(hf, "config.json")):
            run([ctl, "export", "--format", "hf", "--model", out, "--out", hf])
        inner = [sys.executable, os.path.abspath(__file__), "--bin-dir", args.bin_dir, "--inner"]
        c = json.loads(run(inner + [model, hf, ev, "-"]).strip().splitlines()[-1])
        rows[f"caldera {budget}"] = c
        print(f"caldera --target-bits {budget}: {report['totals']['bits_per_param']:.3f} bits, "
              f"perplexity {c['ppl']:.4f}, KL to the original {c['kl']:.3e} nats/token")
        g = json.loads(run(inner + [model, cal, ev, str(bits)]).strip().splitlines()[-1])
        rows[f"gptq w{bits}g32"] = g
        print(f"llm-compressor GPTQ w{bits} g32 ({budget} bits): perplexity {g['ppl']:.4f}, "
              f"KL to the original {g['kl']:.3e} nats/token")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
