"""How much a second core adds on this machine, with no threading library in the way.

    python research/cores.py [--seconds 6]

Runs two single-threaded workloads (a 256x256 fp32 matrix product loop in torch, and a pure
Python loop) once alone and then as two processes at once, and prints each one's rate. On a
machine with two free physical cores the pair does ~2x the work of one process; less means the
cores share something (SMT siblings, other tenants of a VM, a lower clock with both busy). That
is the ceiling for any two-thread speed-up of one run (`research/loop_ms.py 1` vs `2`).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time


def _work(kind: str, seconds: float, results: "multiprocessing.Queue[float]") -> None:
    import torch

    torch.set_num_threads(1)
    if kind == "matmul":
        a, b = torch.randn(256, 256), torch.randn(256, 256)
        for _ in range(50):
            a @ b
        started, done = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            for _ in range(100):
                a @ b
            done += 100
        results.put(done * 2 * 256**3 / (time.perf_counter() - started) / 1e9)  # GFLOP/s
    else:
        started, done = time.perf_counter(), 0
        while time.perf_counter() - started < seconds:
            total = 0
            for i in range(100_000):
                total += i * i
            done += 1
        results.put(done / (time.perf_counter() - started))  # loops/s


def _rates(kind: str, processes: int, seconds: float) -> list[float]:
    results: multiprocessing.Queue[float] = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_work, args=(kind, seconds, results)) for _ in range(processes)]
    for worker in workers:
        worker.start()
    rates = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return rates


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=6.0)
    args = parser.parse_args()
    for kind, unit in (("matmul", "GFLOP/s"), ("python", "loops/s")):
        alone = _rates(kind, 1, args.seconds)[0]
        pair = _rates(kind, 2, args.seconds)
        print(f"{kind}: alone {alone:.1f} {unit}; two at once {pair[0]:.1f} + {pair[1]:.1f} = "
              f"{sum(pair):.1f} ({sum(pair) / alone:.2f}x one process)")


if __name__ == "__main__":
    main()
