"""PyTorch's CPU scaled_dot_product_attention on a decode step: the peer figures beside
`cargo bench -p attn-bench --bench decode`.

Run: `pip install torch`, then `python3 bench/python/sdpa_decode.py`. The same steps as attn's
benchmark: one query row per head, 8 heads of depth 128 over 16,384 cached positions, then
one head over 131,072 (the same bytes), in f32, f16 and bf16, on 1 and 2 threads. Prints the
median time of a step and the bytes of keys and values it reads per second.
"""

import statistics
import time

import torch
import torch.nn.functional as F

STEPS = [
    ("8 heads", 8, 16384),
    ("one head", 1, 131072),
]
TYPES = [("f32", torch.float32), ("f16", torch.float16), ("bf16", torch.bfloat16)]
DEPTH = 128


def step_seconds(heads, positions, dtype, budget=3.0):
    q = torch.randn(1, heads, 1, DEPTH).to(dtype)
    k = torch.randn(1, heads, positions, DEPTH).to(dtype)
    v = torch.randn(1, heads, positions, DEPTH).to(dtype)
    times = []
    start = time.perf_counter()
    with torch.inference_mode():
        while len(times) < 10 or time.perf_counter() - start < budget:
            begin = time.perf_counter()
            F.scaled_dot_product_attention(q, k, v)
            times.append(time.perf_counter() - begin)
    return statistics.median(times), 2 * k.numel() * k.element_size()


def main():
    print(f"PyTorch {torch.__version__}, CPU SDPA, one decode step (depth {DEPTH})")
    for name, heads, positions in STEPS:
        for type_name, dtype in TYPES:
            for threads in (1, 2):
                torch.set_num_threads(threads)
                seconds, bytes_read = step_seconds(heads, positions, dtype)
                label = f"{type_name}, {name} of {positions:,} positions"
                print(
                    f"{label:<36} {threads} thread(s) {seconds * 1e3:9.3f} ms"
                    f" {bytes_read / seconds / 1e9:6.1f} GB/s"
                )


if __name__ == "__main__":
    main()
