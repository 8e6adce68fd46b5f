#!/usr/bin/env python3
"""Seeds of the tokenizer fuzz targets (tokenizer_json, sentencepiece_model): small
tokenizers trained like tests/tokenizer/tokenizer_roundtrip_test.py's, plus truncated and
byte-flipped copies. Needs the `tokenizers` and `sentencepiece` packages (.venv).
Called by make_seed_corpus.sh:  make_tokenizer_seeds.py CORPUS_DIR
"""
import json
import os
import random
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tokenizer"))
import tokenizer_roundtrip_test as t  # noqa: E402


def garble(path, data, rng, alphabet):
    with open(path, "wb") as f:
        f.write(data)
    with open(path + ".truncated", "wb") as f:
        f.write(data[: len(data) // 2])
    b = bytearray(data)
    for _ in range(40):
        b[rng.randrange(len(b))] = rng.choice(alphabet)
    with open(path + ".flipped", "wb") as f:
        f.write(bytes(b))


def main():
    corpus = sys.argv[1]
    rng = random.Random(5)
    lines = t.mixed_lines(200, seed=1)
    out = os.path.join(corpus, "tokenizer_json")
    os.makedirs(out, exist_ok=True)
    for name, (tok, _) in [
            ("llama3", t.train_bytelevel(lines, t.LLAMA3_PATTERN, nfc=False, bos=True,
                                         ignore_merges=True)),
            ("qwen2", t.train_bytelevel(lines, t.QWEN2_PATTERN, nfc=True, bos=False,
                                        ignore_merges=False)),
            ("spm_bpe", t.train_spm_bpe(lines))]:
        text = json.dumps(json.loads(tok.to_str()), ensure_ascii=False).encode()
        garble(os.path.join(out, name + ".json"), text, rng, b'{}[]":,0123456789 \\')
    import sentencepiece as spm
    out = os.path.join(corpus, "sentencepiece_model")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "corpus.txt")
        with open(src, "w", encoding="utf-8") as f:
            f.write("\n".join(x for x in lines if x.strip() and "\n" not in x) + "\n")
        spm.SentencePieceTrainer.train(input=src, model_prefix=os.path.join(tmp, "m"),
                                       vocab_size=500, model_type="bpe", byte_fallback=True,
                                       minloglevel=2, normalization_rule_name="identity",
                                       remove_extra_whitespaces=False, character_coverage=0.98)
        with open(os.path.join(tmp, "m.model"), "rb") as f:
            garble(os.path.join(out, "bpe.model"), f.read(), rng, bytes(range(256)))


if __name__ == "__main__":
    main()
