"""An exponential moving average of the weights, for evaluations and checkpoints, at a cost that fits the update.

Lightning's ``EMAWeightAveraging`` updates the average with a few small tensor ops per weight tensor (torch's
per-tensor ``get_ema_avg_fn``): on one CPU thread of the team's machines that took 3.0–6.8 ms for the small
CNN and 18–28 ms for the Nature CNN alone, ~5–7 ms more per whole update measured in place. `EMA` is the same
average, held by the same Lightning `WeightAveraging` machinery (evaluations and checkpoints use it, the
trained weights stay in the checkpoint as ``current_model_state``, resume works), but updated with torch's
``get_ema_multi_avg_fn``: one foreach ``lerp`` over all weights (0.65–0.95 / 1.6–2.1 ms alone, ≤ 3 ms in
place; docs/performance.md, "The moving average costs one foreach op").
"""

from __future__ import annotations

from collections.abc import Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import WeightAveraging
from torch import Tensor
from torch.optim.swa_utils import get_ema_multi_avg_fn

from visual_iq.errors import ConfigError


class EMA(WeightAveraging):
    """After every optimizer step, average ← decay · average + (1 − decay) · weights (as Lightning's
    ``EMAWeightAveraging(decay=...)`` with its default schedule), in one foreach op.

    Use it in a config's trainer callbacks (``class_path: visual_iq.train.averaging.EMA``, ``init_args: {decay:
    0.9999}``) or on the command line (``--trainer.callbacks+=visual_iq.train.averaging.EMA
    --trainer.callbacks.decay=0.9999``).
    """

    def __init__(self, decay: float = 0.999, device: torch.device | str | None = None,
                 use_buffers: bool = True) -> None:
        super().__init__(device=device, use_buffers=use_buffers, multi_avg_fn=self._update_average)
        self.decay = decay
        self._lerp: Callable[[list[Tensor], list[Tensor], Tensor], None] | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # Checked here, not in __init__: the CLI reports errors raised once fit starts as one line.
        if not 0.0 <= self.decay <= 1.0:
            raise ConfigError(f"EMA decay must be in [0, 1], got {self.decay}")
        self._lerp = get_ema_multi_avg_fn(self.decay)
        super().setup(trainer, pl_module, stage)

    def _update_average(self, averages: list[Tensor], weights: list[Tensor], num_averaged: Tensor) -> None:
        assert self._lerp is not None, "setup() makes the update"
        self._lerp(averages, weights, num_averaged)
