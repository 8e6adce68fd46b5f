#!/usr/bin/env python3
"""calderactl tokenize against the reference tokenizers, ids compared exactly.

Builds small tokenizers in the test itself (no download) and tokenizes a few
thousand lines of mixed text (English, digits, contractions, accents written
both composed and decomposed, CJK, Arabic, Devanagari, emoji with ZWJ, text
that spells special tokens, and whitespace edge cases: runs of spaces, tabs,
CR LF, blank lines, NBSP, ideographic space, NEL, U+2028, VT, FF, zero-width
space) with the `tokenizers` package (PyPI) and with `calderactl tokenize`:
  - llama3:    Split(Llama 3 regex) + ByteLevel, TemplateProcessing BOS,
               ignore_merges, special added tokens
  - qwen2:     NFC + Split(Qwen2 regex, single digits) + ByteLevel, no BOS
  - gpt2:      ByteLevel(add_prefix_space, use_regex), no post-processor, merges
               written as "a b" strings
  - spm_bpe:   Llama 2 / Mistral-style tokenizer.json (Prepend/Replace "▁",
               byte_fallback <0xNN> tokens in the vocabulary, add_bos_token
               from tokenizer_config.json)
  - sentencepiece: a tokenizer.model trained with the `sentencepiece` package
               (BPE, byte fallback, identity normalizer as Llama 2) against its own
               encode, BOS first
Each line is a .jsonl document; the expected ids are the per-document
encodings concatenated. Decoding (--decode) must give the text back.

    tokenizer_roundtrip_test.py CALDERACTL
"""
import json
import os
import random
import struct
import subprocess
import sys
import tempfile

import numpy as np
from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import trainers

HERE = os.path.dirname(os.path.abspath(__file__))
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|"
                  r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"
                 r" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")

WORDS = ("the model compresses every linear layer with a low rank term and a quantized "
         "backbone while calibration uses real activations from text").split()
PIECES = [
    "don't", "I'LL", "we've", "You'RE", "it's", "O'Neil", "1234567", "3.14159", "2026-11-30",
    "héllo", "he\u0301llo", "Ångström", "naïve", "café", "Straße", "漢字", "日本語のテキスト",
    "中文字符", "한국어", "مرحبا بالعالم", "नमस्ते दुनिया", "Привет, мир", "Ελληνικά",
    "🙂", "👩‍💻", "🇩🇪", "👍🏽", "e\u0301", "\u00a0", "\u3000", "\u200b", "\u2028", "\u0085",
    "\x0b", "\x0c", "\t", "  ", "   ", "\r\n", "\n\n", " \n ", "<|end_of_text|>",
    "<|begin_of_text|>", "<|eot|>x", "<s>", "</s>", "<0x41>", "@@", "#$%^&*()", "...", "--",
    "»«", "“quoted”", "x\u0301\u0302", "ℌ", "ﬁ", "①②", "٣٤٥", "Ⅻ",
]


def mixed_lines(n, seed):
    rng = random.Random(seed)
    lines = []
    for _ in range(n):
        parts = []
        for _ in range(rng.randint(1, 12)):
            r = rng.random()
            if r < 0.45:
                parts.append(rng.choice(WORDS))
            elif r < 0.9:
                parts.append(rng.choice(PIECES))
            else:
                parts.append(str(rng.randint(0, 10**rng.randint(1, 9))))
        seps = [" ", " ", " ", "", "  ", "\t", "\n", " \n", "\u00a0"]
        line = "".join(p + rng.choice(seps) for p in parts)
        if rng.random() < 0.2:
            line = rng.choice([" ", "  ", "\t", "\n"]) + line
        if rng.random() < 0.3:
            line = line.rstrip(" ")
        lines.append(line)
    lines.append("")  # an empty document
    lines.append("   ")
    return lines


def train_bytelevel(lines, pattern, *, nfc, bos, ignore_merges, gpt2=False):
    tok = Tokenizer(models.BPE(ignore_merges=ignore_merges))
    if nfc:
        tok.normalizer = normalizers.NFC()
    if gpt2:
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|eot|>"]
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tok.train_from_iterator(lines, trainer)
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="<|begin_of_text|> $A", special_tokens=[
                ("<|begin_of_text|>", tok.token_to_id("<|begin_of_text|>"))])
    elif not gpt2:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok, None


def train_spm_bpe(lines):
    """A Llama 2-style tokenizer.json: ▁ normalizers, byte fallback, BOS from the config."""
    tok = Tokenizer(models.BPE(unk_token="<unk>", fuse_unk=True, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"),
                                           normalizers.Replace(" ", "▁")])
    trainer = trainers.BpeTrainer(vocab_size=800, special_tokens=["<unk>", "<s>", "</s>"],
                                  limit_alphabet=60, show_progress=False)
    tok.train_from_iterator(lines, trainer)
    spec = json.loads(tok.to_str())
    vocab = spec["model"]["vocab"]
    for b in range(256):  # byte-fallback tokens live in the model's vocabulary
        vocab.setdefault("<0x%02X>" % b, len(vocab))
    spec["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
        {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    spec["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
                   {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {"<s>": {"id": "<s>", "ids": [vocab["<s>"]], "tokens": ["<s>"]}}}
    tok = Tokenizer.from_str(json.dumps(spec))
    config = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>",
              "eos_token": "</s>", "tokenizer_class": "LlamaTokenizer"}
    return tok, config


def read_input_ids(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    t = header["input_ids"]
    a, b = t["data_offsets"]
    return np.frombuffer(data[a:b], dtype=np.int32).reshape(t["shape"])


def run(ctl, *args):
    p = subprocess.run([ctl, *args], capture_output=True, text=True)
    if p.returncode != 0:
        raise AssertionError(f"calderactl {' '.join(args)} failed: {p.stdout}{p.stderr}")
    return p.stdout


def compare(name, expected, got, lines):
    expected = np.asarray(expected, dtype=np.int64)
    n = len(got)
    if n == 0 or len(expected) - n >= 2 or not np.array_equal(expected[:n], got):
        bad = next((i for i in range(min(n, len(expected))) if expected[i] != got[i]), n)
        raise AssertionError(f"{name}: ids differ at {bad} of {len(expected)} (got {n}): "
                             f"expected {expected[max(0, bad-5):bad+5].tolist()} "
                             f"got {got[max(0, bad-5):bad+5].tolist()}")
    print(f"{name}: {n} ids equal over {len(lines)} documents")


def check(ctl, tmp, name, tok, config, lines):
    model = os.path.join(tmp, name)
    os.makedirs(model)
    spec = json.loads(tok.to_str())
    if name == "gpt2":  # merges as "a b" strings, the older form many hub files still have
        spec["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m
                                   for m in spec["model"]["merges"]]
        tok = Tokenizer.from_str(json.dumps(spec))
    with open(os.path.join(model, "tokenizer.json"), "w", encoding="utf-8") as f:
        json.dump(spec, f, ensure_ascii=False)
    if config is not None:
        with open(os.path.join(model, "tokenizer_config.json"), "w") as f:
            json.dump(config, f)
    data = os.path.join(tmp, name + ".jsonl")
    with open(data, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps({"body": line}, ensure_ascii=False) + "\n")
    expected = []
    for line in lines:
        expected.extend(tok.encode(line).ids)
    out = os.path.join(tmp, name + ".safetensors")
    run(ctl, "tokenize", "--model", model, "--input", data, "--field", "body", "--seq-len", "2",
        "--out", out)
    compare(name, expected, read_input_ids(out).reshape(-1), lines)
    # One plain text: the whole file once, then --decode gives it back.
    text = "".join(lines[:300])
    txt = os.path.join(tmp, name + ".txt")
    with open(txt, "w", encoding="utf-8", newline="") as f:
        f.write(text)
    run(ctl, "tokenize", "--model", model, "--input", txt, "--seq-len", "2", "--out", out)
    ids = read_input_ids(out).reshape(-1)
    compare(name + " (txt)", tok.encode(text).ids, ids, [text])
    # Bytes that are not UTF-8 are read, not crashed on.
    junk = os.path.join(tmp, name + ".junk.txt")
    with open(junk, "wb") as f:
        f.write(bytes(random.Random(3).randrange(256) for _ in range(20000)))
    run(ctl, "tokenize", "--model", model, "--input", junk, "--seq-len", "2", "--out",
        os.path.join(tmp, "junk.safetensors"))
    decoded = subprocess.run([ctl, "tokenize", "--model", model, "--decode", out],
                             capture_output=True).stdout.decode("utf-8")
    want = tok.decode(ids.tolist())
    if decoded != want:
        raise AssertionError(f"{name}: --decode differs from tokenizers' decode: "
                             f"{decoded[:80]!r} vs {want[:80]!r}")


def check_sentencepiece(ctl, tmp, lines, remove_extra):
    import sentencepiece as spm
    name = "sentencepiece" + ("_remove_extra" if remove_extra else "")
    model = os.path.join(tmp, name)
    os.makedirs(model)
    corpus = os.path.join(tmp, name + "_corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        for line in lines:
            if line.strip() and "\n" not in line:
                f.write(line + "\n")
    spm.SentencePieceTrainer.train(input=corpus, model_prefix=os.path.join(model, "tokenizer"),
                                   vocab_size=600, model_type="bpe", byte_fallback=True,
                                   character_coverage=0.99, minloglevel=2,
                                   normalization_rule_name="identity",  # as Llama 2
                                   remove_extra_whitespaces=remove_extra)
    sp = spm.SentencePieceProcessor(model_file=os.path.join(model, "tokenizer.model"))
    data = os.path.join(tmp, name + ".jsonl")
    with open(data, "w", encoding="utf-8") as f:
        for line in lines:
            f.write(json.dumps({"text": line}, ensure_ascii=False) + "\n")
    expected = []
    for line in lines:
        expected.extend([sp.bos_id()] + sp.encode(line))
    out = os.path.join(tmp, name + ".safetensors")
    run(ctl, "tokenize", "--model", model, "--input", data, "--seq-len", "2", "--out", out)
    compare(name, expected, read_input_ids(out).reshape(-1), lines)


def check_llama2c(ctl, tmp, lines):
    """A model with only llama2.c's tokenizer_vocab.json (the bundled one): the
    tokenizer.json and tokenizer_config.json that export writes for it must encode
    as our llama2.c tokenizer does, in `tokenizers` and in calderactl, and decode
    back. Documents that spell a special token's text are left out: `tokenizers`
    cuts it out as the token, llama2.c spells it (hf_tokenizer_files.h)."""
    bundled = os.path.join(HERE, "..", "..", "models", "stories260K")
    model = os.path.join(tmp, "llama2c")
    os.makedirs(model)
    for name in ("config.json", "tokenizer_vocab.json"):
        with open(os.path.join(bundled, name), "rb") as f, open(os.path.join(model, name), "wb") as g:
            g.write(f.read())
    exported = os.path.join(tmp, "llama2c_hf")
    run(ctl, "export", "--format", "hf", "--model", bundled, "--out", exported)
    with open(os.path.join(exported, "tokenizer_config.json")) as f:
        config = json.load(f)
    if not config["add_bos_token"] or config["model_max_length"] != 512:
        raise AssertionError(f"llama2c: tokenizer_config.json {config}")
    tok = Tokenizer.from_file(os.path.join(exported, "tokenizer.json"))
    specials = [tok.id_to_token(i) for i in (0, 1, 2)]
    docs = [line for line in lines if not any(s in line for s in specials)]
    data = os.path.join(tmp, "llama2c.jsonl")
    with open(data, "w", encoding="utf-8") as f:
        for line in docs:
            f.write(json.dumps({"text": line}, ensure_ascii=False) + "\n")
    expected = []
    for line in docs:
        expected.extend(tok.encode(line).ids)
    for name, where in (("llama2c vocab", model), ("llama2c tokenizer.json", exported)):
        out = os.path.join(tmp, "llama2c.safetensors")
        run(ctl, "tokenize", "--model", where, "--input", data, "--seq-len", "2", "--out", out)
        ids = read_input_ids(out).reshape(-1)
        compare(name, expected, ids, docs)
    want = "".join(docs[:200])
    got = tok.decode(tok.encode(want).ids)
    if got != want:
        raise AssertionError(f"llama2c: decode(encode(t)) != t: {got[:80]!r} vs {want[:80]!r}")


def check_errors(ctl, tmp):
    """Bad tokenizer files: exit 2 (invalid input) with a message naming the file."""
    text = os.path.join(tmp, "err.txt")
    with open(text, "w") as f:
        f.write("some text for the error cases " * 10)
    cases = [
        ("tokenizer.json", b"{not json", "not a JSON object"),
        ("tokenizer.json", b'{"model": {"type": "WordPiece", "vocab": {}}}', "only BPE"),
        ("tokenizer.json", b'{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": ["a b"]}}',
         "outside the vocabulary"),
        ("tokenizer.model", b"\x0a\xff\xff\xff", "not a SentencePiece model"),
    ]
    for i, (file, body, message) in enumerate(cases):
        model = os.path.join(tmp, f"err{i}")
        os.makedirs(model)
        with open(os.path.join(model, file), "wb") as f:
            f.write(body)
        p = subprocess.run([ctl, "tokenize", "--model", model, "--input", text, "--seq-len", "4",
                            "--out", os.path.join(tmp, "err.safetensors")],
                           capture_output=True, text=True)
        if p.returncode != 2 or message not in p.stderr or file not in p.stderr:
            raise AssertionError(f"{file} {body!r}: rc {p.returncode}, {p.stderr}")
    print(f"errors: {len(cases)} bad tokenizer files refused")


def main():
    ctl = sys.argv[1]
    lines = mixed_lines(3000, seed=7)
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            ("llama3", *train_bytelevel(lines, LLAMA3_PATTERN, nfc=False, bos=True,
                                        ignore_merges=True)),
            ("qwen2", *train_bytelevel(lines, QWEN2_PATTERN, nfc=True, bos=False,
                                       ignore_merges=False)),
            ("gpt2", *train_bytelevel(lines, None, nfc=False, bos=False, ignore_merges=False,
                                      gpt2=True)),
            ("spm_bpe", *train_spm_bpe(lines)),
        ]
        for name, tok, config in cases:
            check(ctl, tmp, name, tok, config, lines)
        check_sentencepiece(ctl, tmp, lines, remove_extra=False)
        check_sentencepiece(ctl, tmp, lines, remove_extra=True)
        check_llama2c(ctl, tmp, lines)
        check_errors(ctl, tmp)
    print("tokenizer round trip: OK")


if __name__ == "__main__":
    main()
