"""Memory and start-up time of runs side by side, with and without the demo frame cache.

    python research/demo_cache.py [--demos demos/pong ...] [--num-demos 20] [--processes 2]
        [--cache runs/demo_cache] [--batches 2000] [--json research/results/demo_cache.json]

Starts ``--processes`` processes that each build the expert replay as a training run does
(`BatchSource.from_demos`) and sample ``--batches`` batches from it, then reports per process the
seconds to build it, its resident memory (RSS) and its proportional share (PSS: pages shared by
k processes count 1/k each, so the PSS of all processes adds up to what they use together): first
without a cache (every process decodes its own copy), then with ``--cache`` (the first start
writes the entry; the processes then map the same file).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import time
from pathlib import Path

from visual_iq.data.batches import BatchSource
from visual_iq.env.envs import EnvSettings
from visual_iq.files import atomic_write_text


def _memory_kib() -> dict[str, int]:
    fields = {}
    for line in Path("/proc/self/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":")
        fields[name] = int(value.split()[0])
    return {"rss_kib": fields["Rss"], "pss_kib": fields["Pss"]}


def _one_run(demos: list[str], num_demos: int, cache: str | None, batches: int, barrier, results) -> None:
    started = time.perf_counter()
    source = BatchSource.from_demos(demos, EnvSettings("Pong"), num_demos=num_demos, batch_size=64, cache_dir=cache)
    built = time.perf_counter() - started
    for _ in range(batches):
        source.sample(with_policy=False)
    barrier.wait()  # all processes have read their replay: now the shared pages are shared
    results.put({"build_s": round(built, 2), **_memory_kib(), "frames_gib": source.expert.frames.nbytes / 2**30})
    barrier.wait()


def side_by_side(demos: list[str], num_demos: int, cache: str | None, processes: int, batches: int) -> list[dict]:
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(processes), context.Queue()
    workers = [context.Process(target=_one_run, args=(demos, num_demos, cache, batches, barrier, results))
               for _ in range(processes)]
    for worker in workers:
        worker.start()
    reports = [results.get() for _ in workers]
    for worker in workers:
        worker.join()
    return reports


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", nargs="+", default=["demos/pong"])
    parser.add_argument("--num-demos", type=int, default=20)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--cache", default="runs/demo_cache_benchmark")
    parser.add_argument("--batches", type=int, default=2000)
    parser.add_argument("--json", default=None)
    args = parser.parse_args()
    shutil.rmtree(args.cache, ignore_errors=True)
    report: dict = {"demos": args.demos, "num_demos": args.num_demos, "processes": args.processes}
    report["no_cache"] = side_by_side(args.demos, args.num_demos, None, args.processes, args.batches)
    started = time.perf_counter()
    side_by_side(args.demos, args.num_demos, args.cache, 1, 0)
    report["cache_first_write_s"] = round(time.perf_counter() - started, 2)
    report["cache"] = side_by_side(args.demos, args.num_demos, args.cache, args.processes, args.batches)
    for name in ("no_cache", "cache"):
        runs = report[name]
        print(f"{name:>8}: frames {runs[0]['frames_gib']:.2f} GiB per process; "
              + "; ".join(f"build {r['build_s']:.1f} s, RSS {r['rss_kib'] / 2**20:.2f} GiB, "
                          f"PSS {r['pss_kib'] / 2**20:.2f} GiB" for r in runs)
              + f"; PSS in all {sum(r['pss_kib'] for r in runs) / 2**20:.2f} GiB")
    print(f"writing the cache entry once: {report['cache_first_write_s']:.1f} s (a process that decodes and writes)")
    if args.json:
        atomic_write_text(Path(args.json), json.dumps(report, indent=2))
    shutil.rmtree(args.cache, ignore_errors=True)


if __name__ == "__main__":
    main()
