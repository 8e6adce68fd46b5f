"""Token perplexity of a causal LM on pre-tokenized rows, computed by torch: the one
definition hf_load_test.py and compressed_tensors_load_test.py compare with
`calderactl eval` (each row scored on its own, every next token predicted)."""


def perplexity(model, ids):
    import torch
    model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for row in ids:
            logits = model(row[None, :]).logits[0, :-1].double()
            total += torch.nn.functional.cross_entropy(logits, row[1:], reduction="sum").item()
            count += row.numel() - 1
    return float(torch.exp(torch.tensor(total / count)))
