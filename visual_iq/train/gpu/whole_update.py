"""The whole update inside the training step (``whole_update: true``), on a GPU one CUDA graph.

On an H200 the loss's graphs (`visual_iq.train.gpu.capture`) brought an update's GPU work to ~1 ms, yet
Lightning's loop still took 2.6 ms per update: the ~20 small kernels of sampling, the optimizer
step, the Polyak update and Lightning's own per-batch work are host time around it
(docs/performance.md). Here one update is a closure that samples its batch on the device,
computes the objective's loss, backpropagates and steps Adam; on a GPU the first
`WARMUP_UPDATES` run eagerly on a side stream, the next one records all of that as one CUDA graph,
and every later update is one launch of it. ``updates_per_step`` updates then share one pass of
Lightning's loop: the module steps Lightning's optimizer once per update (`StepInClosure`), so the
Trainer's step count, ``max_steps`` and checkpoints still count updates.

Eagerly (on any device; on the CPU in the tests) the closure does what Lightning's automatic
optimization does with the DataLoader's batches, in the same order, and trains to the same weights.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch import Tensor, nn

from visual_iq.train.gpu.capture import resolve_capture
from visual_iq.errors import ConfigError
from visual_iq.algo.networks import polyak_update
from visual_iq.algo.objectives import Batch, Objective

WARMUP_UPDATES = 3
"""Eager updates on a side stream before recording: CUDA graphs need lazy initialisation (Adam's
state, cuBLAS workspaces, autograd's buffers) done before capture (PyTorch's CUDA-graph notes)."""


class StepInClosure:
    """What Lightning holds as the optimizer when the update steps Adam itself, inside the graph:
    ``step(closure)`` runs the closure (one whole update) and nothing else. Param groups and state
    are Adam's, so the learning-rate drop, checkpoints and resuming see the real optimizer."""

    def __init__(self, adam: torch.optim.Optimizer) -> None:
        self.adam = adam

    @property
    def param_groups(self) -> list[dict[str, Any]]:
        return self.adam.param_groups

    @property
    def defaults(self) -> dict[str, Any]:
        return self.adam.defaults

    @property
    def state(self) -> Any:
        return self.adam.state

    def step(self, closure: Callable[[], Any]) -> Any:
        return closure()

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.adam.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        # A learning rate held as a device tensor (for the graph) is saved as a number: the
        # checkpoint resumes on any device, in either mode.
        state = self.adam.state_dict()
        for group in state["param_groups"]:
            if isinstance(group["lr"], Tensor):
                group["lr"] = float(group["lr"])
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.adam.load_state_dict(state_dict)


class WholeUpdate:
    """``loss = whole_update(update)``: update number ``update`` (counted from 0), whole.

    Runs ``before_update(update)`` (online: the env steps due, and the device replay brought up to
    date, eagerly), samples a batch with ``sample``, takes the objective's loss on it, backpropagates,
    steps Adam (`optimizer` makes it), then moves the target network toward the online one every
    ``target_update_interval`` updates (eagerly: one multi-tensor kernel). ``last_batch`` is the
    batch the last update learned from (the logged metrics are computed on it). With capture
    (`configure`), sampling on the device with ``generator`` and everything up to Adam's step are
    replayed from one CUDA graph; if recording fails, ``strict`` raises, otherwise a warning says
    why and updates run eagerly.
    """

    def __init__(self, objective: Objective, q_net: nn.Module, target_net: nn.Module,
                 sample: Callable[[], Batch], *, target_tau: float, target_update_interval: int,
                 before_update: Callable[[int], None] | None = None) -> None:
        self.objective, self.q_net, self.target_net, self.sample = objective, q_net, target_net, sample
        self.before_update = before_update
        self.target_tau, self.target_update_interval = target_tau, target_update_interval
        self.adam: torch.optim.Optimizer | None = None
        self.capture, self.strict = False, False
        self.generator: torch.Generator | None = None
        self.last_batch: Batch = {}
        self._graph: torch.cuda.CUDAGraph | None = None
        self._static_loss: Tensor | None = None
        self._eager_updates = 0

    def configure(self, requested: bool | None, blocker: str | None, generator: torch.Generator | None,
                  world_size: int = 1) -> None:
        """Capture as `visual_iq.train.gpu.capture.resolve_capture` decides; ``generator``: the device sampler's
        (None: sampling happens on the host, which a graph cannot record). One process only."""
        if world_size > 1:
            raise ConfigError("whole_update runs in one process: under DDP the gradients' all-reduce needs "
                              "Lightning's backward; set whole_update: false")
        if blocker is None and generator is None:
            blocker = "sampling happens on the host (device_replay: false)"
        self.capture, self.strict = resolve_capture(requested, blocker)
        self.generator = generator

    def optimizer(self, lr: float) -> StepInClosure:
        """Adam over the online network (fused: one pass over the weights), in Lightning's wrapper."""
        self.adam = torch.optim.Adam(self.q_net.parameters(), lr=lr, fused=True)
        return StepInClosure(self.adam)

    @property
    def captured(self) -> bool:
        return self._graph is not None

    def __call__(self, update: int) -> Tensor:
        if self.before_update is not None:
            self.before_update(update)
        if self._graph is not None:
            self._graph.replay()
            loss = self._static_loss
        elif self.capture and self._eager_updates >= WARMUP_UPDATES:
            loss = self._record_or_fall_back()
        elif self.capture:
            loss = self._learn_on_side_stream()
        else:
            loss = self._learn()
        if (update + 1) % self.target_update_interval == 0:
            polyak_update(self.target_net, self.q_net, self.target_tau)
        assert loss is not None
        return loss

    def _learn(self) -> Tensor:
        assert self.adam is not None, "call optimizer() first"
        self.adam.zero_grad(set_to_none=True)  # in the graph: .grad is written, not accumulated, by every replay
        self.last_batch = batch = self.sample()
        loss, _, _ = self.objective(self.q_net, self.target_net, batch, with_metrics=False)
        loss.backward()
        self.adam.step()
        self._eager_updates += 1
        return loss.detach()

    def _learn_on_side_stream(self) -> Tensor:
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            loss = self._learn()
        torch.cuda.current_stream().wait_stream(stream)
        return loss

    def _record_or_fall_back(self) -> Tensor:
        try:
            return self._record()
        except (RuntimeError, AttributeError) as error:
            if self.strict:
                raise
            warnings.warn(f"could not record the whole update as a CUDA graph, running it eagerly: {error}")
            self.capture = False
            return self._learn()

    def _record(self) -> Tensor:
        assert self.adam is not None
        device = next(self.q_net.parameters()).device
        for group in self.adam.param_groups:
            # Adam's step counts on the device, and the graph reads the learning rate from a tensor
            # that `visual_iq.train.schedule.LearningRateDrop` fills in (a number would be recorded as is).
            group["capturable"] = True
            if not isinstance(group["lr"], Tensor):
                group["lr"] = torch.tensor(float(group["lr"]), device=device)
        graph = torch.cuda.CUDAGraph()
        if self.generator is not None:
            graph.register_generator_state(self.generator)  # each replay draws new indices
        with torch.cuda.graph(graph):  # _learn sets .grad to None first: the graph's backward allocates it
            self._static_loss = self._learn()
        self._graph = graph
        graph.replay()  # recording ran nothing: this is the update
        return self._static_loss


def run_updates(whole_update: WholeUpdate, optimizer: Any, first_update: int, updates_per_step: int,
                max_steps: int) -> Tensor:
    """One training step's updates, ``first_update`` on (none past ``max_steps``, if >= 0): each through
    Lightning's optimizer ``step``, which counts it (``global_step`` + 1) and whose `StepInClosure`
    runs it. Returns the last update's loss."""
    count = updates_per_step if max_steps < 0 else min(updates_per_step, max_steps - first_update)
    loss = torch.zeros(())
    for update in range(first_update, first_update + count):
        loss = optimizer.step(lambda update=update: whole_update(update))
    return loss


class UpdatesInSteps(Callback):
    """Lightning's loop around training steps of ``updates_per_step`` updates each.

    The Trainer counts updates (optimizer steps) in ``global_step``, so ``max_steps`` and
    checkpoints hold; validation, which it schedules in training steps, is moved to every
    ``val_check_interval`` updates, and its logger's step is set to the update count. What it
    checks between steps (validation, logging, snapshots, the lr drop) must be a multiple of
    ``updates_per_step``, or it would fall inside a step: a `ConfigError` names the first that is not.
    """

    def __init__(self, updates_per_step: int, **counts: int | None) -> None:
        self.updates_per_step, self.counts = updates_per_step, counts

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        # A float val_check_interval is a fraction of an epoch: never, in an endless one.
        validation = trainer.val_check_interval if isinstance(trainer.val_check_interval, int) else None
        counts = {"trainer.val_check_interval": validation, "trainer.log_every_n_steps": trainer.log_every_n_steps,
                  **self.counts}
        for name, value in counts.items():
            if value is not None and value % self.updates_per_step:
                raise ConfigError(f"{name}={value} is not a whole multiple of updates_per_step="
                                  f"{self.updates_per_step}: Lightning acts on it between training steps")

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if isinstance(trainer.val_check_interval, int):
            trainer.val_check_batch = trainer.val_check_interval // self.updates_per_step

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        # Lightning adds 1 after this hook: its logger then writes at the update count.
        trainer.fit_loop.epoch_loop._batches_that_stepped = trainer.global_step - 1



_AUTOMATIC_STEPS = "epoch_loop.automatic_optimization.optim_progress"
_MANUAL_STEPS = "epoch_loop.manual_optimization.optim_step_progress"
_BATCHES = "epoch_loop.batch_progress"


def carry_update_count(checkpoint: dict[str, Any], whole_update: bool, updates_per_step: int) -> None:
    """Lightning keeps the update count (``global_step``) in the loop state of one optimization mode
    and schedules validation by training steps, so a run resumed with ``whole_update`` or
    ``updates_per_step`` changed would count from 0 or validate off its schedule: for a checkpoint
    saved with other settings, both counts are set to its updates and the training steps to what
    the new settings make of them."""
    loop = checkpoint.get("loops", {}).get("fit_loop", {})
    saved = checkpoint.get("hyper_parameters", {})
    if any(key not in loop for key in (_AUTOMATIC_STEPS, _MANUAL_STEPS, _BATCHES)):
        return  # weights only, or a Lightning that keeps its loop state otherwise
    speed = saved.get("speed", {})
    if (bool(speed.get("whole_update")), speed.get("updates_per_step", 1)) == (whole_update, updates_per_step):
        return
    automatic = loop[_AUTOMATIC_STEPS]["optimizer"]["step"]
    updates = max(automatic["total"]["completed"], loop[_MANUAL_STEPS]["total"]["completed"])
    for progress in (automatic, loop[_MANUAL_STEPS]):
        for part in ("total", "current"):
            progress[part] = {"ready": updates, "completed": updates}
    for part in ("total", "current"):  # one endless epoch: its steps so far are all steps
        loop[_BATCHES][part] = dict.fromkeys(("ready", "completed", "started", "processed"), updates // updates_per_step)
