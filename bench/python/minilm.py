"""all-MiniLM-L6-v2 in PyTorch, the peer figures beside
`cargo run --release -p attn-bench --example minilm -- <model-dir>`.

Run: `pip install torch safetensors tokenizers`, then
`python3 bench/python/minilm.py <model-dir>`. The same BERT encoder written with
torch.nn.functional (as transformers' BertModel computes it, in f32, eager): a batch padded
to its longest sentence with an attention mask, as sentence-transformers pads it. Prints the
model card's cosine similarities, then the median time of one sentence and of a batch of 32
(the three sentences over and over) on one and two threads, with the share of the time in
scaled_dot_product_attention.
"""

import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from tokenizers import Tokenizer

SENTENCES = [
    "The weather is lovely today.",
    "It's so sunny outside!",
    "He drove to the stadium.",
]


class MiniLm:
    def __init__(self, folder):
        self.config = json.load(open(f"{folder}/config.json"))
        self.w = load_file(f"{folder}/model.safetensors")
        self.tokenizer = Tokenizer.from_file(f"{folder}/tokenizer.json")
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()
        self.attention_seconds = 0.0

    def linear(self, x, name):
        return F.linear(x, self.w[f"{name}.weight"], self.w[f"{name}.bias"])

    def norm(self, x, name):
        eps = self.config["layer_norm_eps"]
        return F.layer_norm(x, x.shape[-1:], self.w[f"{name}.weight"], self.w[f"{name}.bias"], eps)

    def batch(self, texts):
        ids = [self.tokenizer.encode(t).ids for t in texts]
        longest = max(len(i) for i in ids)
        tokens = torch.zeros(len(ids), longest, dtype=torch.long)
        mask = torch.zeros(len(ids), longest, dtype=torch.bool)
        for b, i in enumerate(ids):
            tokens[b, : len(i)] = torch.tensor(i)
            mask[b, : len(i)] = True
        return tokens, mask

    @torch.inference_mode()
    def embed(self, tokens, mask):
        heads = self.config["num_attention_heads"]
        b, n = tokens.shape
        positions = torch.arange(n)
        x = (
            self.w["embeddings.word_embeddings.weight"][tokens]
            + self.w["embeddings.position_embeddings.weight"][positions]
            + self.w["embeddings.token_type_embeddings.weight"][0]
        )
        x = self.norm(x, "embeddings.LayerNorm")
        keep = mask[:, None, None, :]
        for layer in range(self.config["num_hidden_layers"]):
            p = f"encoder.layer.{layer}"
            split = lambda t: t.view(b, n, heads, -1).transpose(1, 2)
            q = split(self.linear(x, f"{p}.attention.self.query"))
            k = split(self.linear(x, f"{p}.attention.self.key"))
            v = split(self.linear(x, f"{p}.attention.self.value"))
            start = time.perf_counter()
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
            self.attention_seconds += time.perf_counter() - start
            a = a.transpose(1, 2).reshape(b, n, -1)
            x = self.norm(x + self.linear(a, f"{p}.attention.output.dense"), f"{p}.attention.output.LayerNorm")
            h = F.gelu(self.linear(x, f"{p}.intermediate.dense"))
            x = self.norm(x + self.linear(h, f"{p}.output.dense"), f"{p}.output.LayerNorm")
        summed = (x * mask[..., None]).sum(1) / mask.sum(1, keepdim=True)
        return F.normalize(summed, dim=-1)


def median_seconds(f, budget=1.0):
    f()
    times, start = [], time.perf_counter()
    while time.perf_counter() - start < budget or len(times) < 5:
        t = time.perf_counter()
        f()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main():
    model = MiniLm(sys.argv[1])
    e = model.embed(*model.batch(SENTENCES))
    for i in range(3):
        for j in range(i + 1, 3):
            print(f"cos({i}, {j}) = {float(e[i] @ e[j]):.4f}")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, texts in (("one sentence", SENTENCES[:1]), ("batch of 32", (SENTENCES * 11)[:32])):
            batch = model.batch(texts)
            model.embed(*batch)
            model.attention_seconds, calls = 0.0, [0]

            def run():
                calls[0] += 1
                model.embed(*batch)

            seconds = median_seconds(run)
            share = model.attention_seconds / calls[0] / seconds
            print(
                f"  {name:<12} {threads} thread{' ' if threads == 1 else 's'}: {seconds * 1e3:8.2f} ms; "
                f"scaled_dot_product_attention {share * 100:4.1f}%"
            )


if __name__ == "__main__":
    main()
