"""The learning rate over a run: ``lr``, then a lower ``lr_drop_to`` after ``lr_drop_at`` updates.

A Lightning callback sets it from the update count before every update (not kept by a torch
scheduler's own counter), so a resumed run follows it even from a checkpoint saved before the drop
was set (research/results.md, "A second, lower learning rate").
"""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback


def learning_rate_at(update: int, lr: float, drop_at: int | None, drop_to: float | None) -> float:
    """The learning rate of update number ``update`` (counted from 0)."""
    return drop_to if drop_at is not None and drop_to is not None and update >= drop_at else lr


class LearningRateDrop(Callback):
    """Sets every optimizer parameter group's learning rate before each update and logs ``train/lr``."""

    def __init__(self, lr: float, drop_at: int | None, drop_to: float | None) -> None:
        self.lr, self.drop_at, self.drop_to = lr, drop_at, drop_to

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int) -> None:
        lr = learning_rate_at(trainer.global_step, self.lr, self.drop_at, self.drop_to)
        for optimizer in trainer.optimizers:
            for group in optimizer.param_groups:
                if isinstance(group["lr"], torch.Tensor):  # read by a CUDA graph (`visual_iq.train.gpu.whole_update`): in place
                    group["lr"].fill_(lr)
                else:
                    group["lr"] = lr
        if trainer.global_step % trainer.log_every_n_steps == 0:
            pl_module.log("train/lr", lr)
