"""Median ms per update of Lightning's training loop (what `visual-iq fit` runs) for the code on PYTHONPATH.

    python research/loop_ms.py THREADS NETWORK UPDATES [--keep-freed-memory]

Offline IQ on the first Pong demo, batch 32, fp32, no evaluation. It uses only what every
version of `IQLearn` has, so it compares commits: run it from a `git worktree` of the old commit
with ``PYTHONPATH=.`` and from this one, alternating (these machines drift by ±30 %).
It also counts minor page faults per update (memory the allocator handed back to the OS and
faults in again); ``--keep-freed-memory`` tells glibc's malloc to keep freed memory instead.
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import statistics
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch

import visual_iq
from visual_iq.env.envs import EnvSettings
from visual_iq.train.config import Data, Evaluation, Speed
from visual_iq.train.module import ENDLESS_STREAM_TRAINER_FLAGS, IQLearn


class _Stamps(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []
        self.faults: list[int] = []

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter())
        self.faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("threads", type=int)
    parser.add_argument("network", choices=("nature", "small"))
    parser.add_argument("updates", type=int)
    parser.add_argument("--keep-freed-memory", action="store_true",
                        help="visual_iq.train.allocator.keep_freed_memory (what visual-iq fit does by default now)")
    args = parser.parse_args()
    threads, network, updates = args.threads, args.network, args.updates
    if args.keep_freed_memory:
        # From this checkout's file, not the package on PYTHONPATH (an older commit may lack it).
        spec = importlib.util.spec_from_file_location("allocator", Path(__file__).parents[1] / "visual_iq/train/allocator.py")
        allocator = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(allocator)
        allocator.keep_freed_memory()
    torch.set_num_threads(threads)
    model = IQLearn(env=EnvSettings("Pong"), data=Data(demos="demos/pong", num_demos=1, batch_size=32), network=network,
                    evaluation=Evaluation(video=False), speed=Speed(precision="32"))
    stamps = _Stamps()
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=updates, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=50, callbacks=[stamps])
    trainer.fit(model)
    median = 1000 * statistics.median(np.diff(stamps.times[10:]))
    faults = (stamps.faults[-1] - stamps.faults[10]) / (len(stamps.faults) - 11)
    print(f"{visual_iq.__file__}: {threads} thread(s), {network}: {median:.1f} ms per update, "
          f"{faults:.0f} minor page faults per update")


if __name__ == "__main__":
    main()
