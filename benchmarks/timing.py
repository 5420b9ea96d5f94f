"""The one timing rule every benchmark here uses: warm up, then the best of a few timed runs."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch


def seconds_per_call(run: Callable[[], object], repeats: int = 3, min_seconds: float = 1.0) -> float:
    """Best of `repeats` timings, each over enough calls to last about `min_seconds`. CUDA work is waited
    for before each clock reading (kernels run asynchronously)."""
    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    run()  # warm up: allocator, oneDNN primitive cache, compiled kernels, loaded models
    sync()
    start = time.perf_counter()
    run()
    sync()
    once = time.perf_counter() - start
    calls = max(1, int(min_seconds / max(once, 1e-6)))
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(calls):
            run()
        sync()
        best = min(best, (time.perf_counter() - start) / calls)
    return best


def matmul_peak(device: torch.device, sizes: tuple[int, ...] = (1024, 2048, 4096), repeats: int = 3) -> float:
    """fp32 FLOP/s of the fastest large square matmul: the machine's practical peak for this dtype."""
    best = 0.0
    for size in sizes:
        a = torch.randn(size, size, device=device)
        b = torch.randn(size, size, device=device)

        def run(a: torch.Tensor = a, b: torch.Tensor = b) -> None:
            torch.mm(a, b)
            if device.type == "cuda":
                torch.cuda.synchronize()

        best = max(best, 2 * size**3 / seconds_per_call(run, repeats))
    return best
