"""Median ms per update of Lightning's training loop (what `visual-iq fit` runs) for the code on PYTHONPATH.

    python benchmarks/loop_ms.py THREADS NETWORK UPDATES

Offline IQ on the first Pong demo, batch 32, fp32, no evaluation. It uses only what every
version of `IQLearn` has, so it compares commits: run it from a `git worktree` of the old commit
with ``PYTHONPATH=.`` and from this one, alternating (these machines drift by ±30 %).
"""

from __future__ import annotations

import statistics
import sys
import time

import lightning as L
import numpy as np
import torch

import visual_iq
from visual_iq.module import ENDLESS_STREAM_TRAINER_FLAGS, IQLearn


class _Stamps(L.Callback):
    def __init__(self) -> None:
        self.times: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.times.append(time.perf_counter())


def main() -> None:
    threads, network, updates = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
    torch.set_num_threads(threads)
    model = IQLearn(game="Pong", demos="demos/pong", num_demos=1, network=network, precision="32", batch_size=32,
                    eval_video=False)
    stamps = _Stamps()
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=updates, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=50, callbacks=[stamps])
    trainer.fit(model)
    median = 1000 * statistics.median(np.diff(stamps.times[10:]))
    print(f"{visual_iq.__file__}: {threads} thread(s), {network}: {median:.1f} ms per update")


if __name__ == "__main__":
    main()
