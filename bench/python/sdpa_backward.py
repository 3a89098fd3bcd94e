"""PyTorch's CPU scaled_dot_product_attention, forward and backward, on attn's workloads:
the peer figures beside `cargo bench -p attn-bench --bench backward`.

Run: `pip install torch`, then `python3 bench/python/sdpa_backward.py`. Prints, per workload
and thread count, the median time of the backward alone (the gradients of q, k and v from
a retained forward graph) and its GFLOP/s counting 10 B H Nq Nk D, as attn's benchmark does
(half under a causal mask).
"""

import statistics
import time

import torch
import torch.nn.functional as F

WORKLOADS = [
    ("W2 one head [1, 1, 128, 128, 64]", (1, 1, 128, 128, 64), False),
    ("W3 long [1, 1, 2048, 2048, 64]", (1, 1, 2048, 2048, 64), False),
    ("W3 causal", (1, 1, 2048, 2048, 64), True),
    ("W4 heads [96, 256, 256, 64]", (96, 1, 256, 256, 64), False),
]


def backward_seconds(shape, causal, budget=4.0):
    b, h, nq, nk, d = shape
    q = torch.randn(b, h, nq, d, requires_grad=True)
    k = torch.randn(b, h, nk, d, requires_grad=True)
    v = torch.randn(b, h, nk, d, requires_grad=True)
    d_out = torch.randn(b, h, nq, d)
    times = []
    start = time.perf_counter()
    while len(times) < 5 or time.perf_counter() - start < budget:
        out = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
        q.grad = k.grad = v.grad = None
        begin = time.perf_counter()
        out.backward(d_out)
        times.append(time.perf_counter() - begin)
    return statistics.median(times)


def main():
    print(f"PyTorch {torch.__version__}, CPU SDPA backward (the forward not timed)")
    for threads in (1, 2):
        torch.set_num_threads(threads)
        for name, shape, causal in WORKLOADS:
            b, h, nq, nk, d = shape
            flops = 10 * b * h * nq * nk * d / (2 if causal else 1)
            seconds = backward_seconds(shape, causal)
            print(f"{name:<34} {threads} thread(s) {seconds * 1e3:9.2f} ms {flops / seconds / 1e9:8.1f} GFLOP/s")


if __name__ == "__main__":
    main()
