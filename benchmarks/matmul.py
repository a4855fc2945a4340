"""The machine's fp32 matmul throughput, the physical limit to quote: ``python benchmarks/matmul.py``.

Times ``[4096, 384] @ [384, 1536]`` (the shape of a small encoder's feed-forward layer over a batch of
tokens) and a square 2048 product on all of torch's threads; prints GFLOP/s (best of the repeats: on a shared
machine the best run is the closest to what the hardware gives).
"""

from __future__ import annotations

import time

import torch


def gflops(m: int, k: int, n: int, repeats: int = 10) -> float:
    a, b = torch.randn(m, k), torch.randn(k, n)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - start)
    return 2 * m * k * n / best / 1e9


def main() -> None:
    print(f"threads: {torch.get_num_threads()}")
    print(f"[4096, 384] @ [384, 1536]: {gflops(4096, 384, 1536):.1f} GFLOP/s")
    print(f"[2048, 2048] @ [2048, 2048]: {gflops(2048, 2048, 2048):.1f} GFLOP/s")


if __name__ == "__main__":
    main()
