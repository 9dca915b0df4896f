"""The update's loss, forward and backward, recorded once as CUDA graphs and replayed.

On a GPU one update of these small CNNs is a few GFLOP, which the card does in a fraction of a
millisecond; eager PyTorch spends 4-5 ms launching the update's ~100 small kernels one by one
from Python (H200, docs/performance.md). `torch.cuda.make_graphed_callables` records
the loss's forward pass and its backward pass once and then replays each as a single launch, and
stays an ordinary autograd function: Lightning's ``loss.backward()``, the fused Adam step (a
few kernels) and the target-network update run as before, outside the graphs.

What a graph needs from the loss: the same shapes every update and nothing read back to the host
(no ``.item()``, no boolean indexing). The objectives' ``with_metrics=False`` path is written that
way (`visual_iq.algo.losses.masked_mean`); the logged metrics come from a separate no-gradient pass at
logging steps only.
"""

from __future__ import annotations

import warnings

import torch
from torch import Tensor, nn

from visual_iq.errors import ConfigError
from visual_iq.algo.objectives import Batch, Objective


def capture_blocker(device: torch.device, *, bf16: bool, grad_penalty: float, world_size: int) -> str | None:
    """Why the update cannot be captured here, or None if it can."""
    if device.type != "cuda":
        return "CUDA graphs need a CUDA device"
    if bf16:
        return "the bf16 trunk runs under autocast, whose cast cache graphs do not support"
    if grad_penalty > 0:
        return "the gradient penalty differentiates twice, which graphed callables do not support"
    if world_size > 1:
        return "under DDP the gradient all-reduce hooks must see every backward pass eagerly"
    return None


def resolve_capture(requested: bool | None, blocker: str | None) -> tuple[bool, bool]:
    """(capture, strict) for the ``capture`` setting: null captures unless `capture_blocker` gave a
    reason (``blocker``); true captures, and a blocker or a failed recording is an error; false never."""
    if requested and blocker is not None:
        raise ConfigError(f"capture: true is not possible here: {blocker}; set capture: null or false")
    return (blocker is None if requested is None else requested), bool(requested)


class _LossOfTensors(nn.Module):
    """The objective's loss as a module of positional tensors, the form graph capture takes.

    Holding both networks as submodules makes their weights inputs of the graphs: the online
    net's get gradients, the target net's (no gradient) are read where they live, so the eager
    Polyak update between replays is seen by the next one.
    """

    def __init__(self, objective: Objective, q_net: nn.Module, target_net: nn.Module, keys: tuple[str, ...]) -> None:
        super().__init__()
        self.objective, self.q_net, self.target_net, self.keys = objective, q_net, target_net, keys

    def forward(self, *tensors: Tensor) -> Tensor:
        loss, _, _ = self.objective(self.q_net, self.target_net, dict(zip(self.keys, tensors)), with_metrics=False)
        return loss


class UpdateLoss:
    """``loss = update_loss(batch)``: the objective's loss with gradient, eager or replayed from
    CUDA graphs recorded on the first batch (``capture=True``). Same values either way.

    If recording fails, ``strict`` raises; otherwise a warning says why and the loss runs eagerly.
    Recording fails if an autograd graph of these networks made outside it is still alive (a loss
    kept from an eager backward pass): it ties the gradients to the default stream (measured on an
    H200: ``cudaErrorStreamCaptureImplicit``). In `visual_iq.train.module.IQLearn` the first update records.
    """

    def __init__(self, objective: Objective, q_net: nn.Module, target_net: nn.Module, *, capture: bool = False,
                 strict: bool = False) -> None:
        self.objective, self.q_net, self.target_net = objective, q_net, target_net
        self.capture, self.strict = capture, strict
        self._keys: tuple[str, ...] = ()
        self._graphed: nn.Module | None = None

    def configure(self, requested: bool | None, blocker: str | None) -> None:
        self.capture, self.strict = resolve_capture(requested, blocker)

    @property
    def captured(self) -> bool:
        return self._graphed is not None

    def __call__(self, batch: Batch) -> Tensor:
        if self.capture and self._graphed is None:
            try:
                self._record(batch)
            except RuntimeError as error:
                if self.strict:
                    raise
                warnings.warn(f"could not record the update as CUDA graphs, running it eagerly: {error}")
                self.capture = False
        if self._graphed is not None:
            return self._graphed(*(batch[key] for key in self._keys))
        loss, _, _ = self.objective(self.q_net, self.target_net, batch, with_metrics=False)
        return loss

    def _record(self, batch: Batch) -> None:
        # The first batch becomes the graphs' static input (later batches are copied into it);
        # recording runs the loss and its gradient 3 times as warm-up without touching .grad.
        self._keys = tuple(sorted(batch))
        module = _LossOfTensors(self.objective, self.q_net, self.target_net, self._keys)
        self._graphed = torch.cuda.make_graphed_callables(module, tuple(batch[key] for key in self._keys),
                                                          allow_unused_input=True)
