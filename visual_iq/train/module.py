"""IQ-Learn as a LightningModule: the module is the algorithm, the Trainer is the loop.

It composes the pieces: a soft-Q network and its target (`visual_iq.algo.networks`), an objective chosen once
(`visual_iq.algo.objectives`: IQ-Learn, or the BC / SQIL baselines on the same network and data), a batch source
(`visual_iq.data.batches`) over the demonstrations and, online, a policy replay that a `Collector` fills by acting
with the soft-Q policy before every update. Validation plays evaluation games with the greedy policy. Its settings
are typed groups (`visual_iq.train.config`), ``__init__`` arguments that LightningCLI makes sections of the config.
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from functools import partial
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from visual_iq.algo.agent import SoftQAgent, prepare_checkpoint_to_load
from visual_iq.data.batches import BatchSource, BatchStream, OneDummyItem, sampling_device
from visual_iq.train.gpu.capture import UpdateLoss, capture_blocker
from visual_iq.train.checkpoints import run_checkpoints
from visual_iq.train.collector import Collector, env_steps_at_update, env_steps_before_update
from visual_iq.train.config import Data, Evaluation, Network, Objective, Online, Optim, Speed, as_group, check_demos_for
from visual_iq.env.envs import EnvSettings, num_actions
from visual_iq.train.evaluation import TEST_SEED, VALIDATION_SEED, EvaluationResult, evaluate, log_video, validation_metrics
from visual_iq.algo.networks import build_q_network, polyak_update, resolve_precision
from visual_iq.algo.objectives import make_objective, training_metrics
from visual_iq.train.exploration import Explorer
from visual_iq.train.schedule import LearningRateDrop
from visual_iq.train.gpu.whole_update import UpdatesInSteps, WholeUpdate, carry_update_count, run_updates

ENDLESS_STREAM_TRAINER_FLAGS: dict[str, Any] = {"max_epochs": -1, "check_val_every_n_epoch": None,
                                                "num_sanity_val_steps": 0}
"""Trainer flags the endless batch stream needs: run length from ``max_steps``, validation every
``val_check_interval`` updates."""

RANK_SEED_STRIDE = 1_000_003
"""Seed offset between DDP processes (large, so no rank's seeds meet another's)."""


class IQLearn(L.LightningModule):
    """Inverse soft-Q learning (IQ-Learn) from pixels, or a baseline (BC, SQIL) on the same footing.

    Its settings come in typed groups (`visual_iq.train.config`), each a section of the ``model:``
    config: ``env`` (the observations: `EnvSettings`), ``data``, ``objective``, ``network`` (``nature``:
    Nature-DQN CNN, ``small``: 2-conv CNN; ``_dueling``: with a dueling head), ``optim``, ``online``,
    ``evaluation``, ``speed``, and ``seed`` (of sampling, acting and evaluation; under DDP each rank
    samples and acts with its own).
    """

    def __init__(self, env: EnvSettings = EnvSettings(), data: Data = Data(), objective: Objective = Objective(),
                 network: Network = "small", optim: Optim = Optim(), online: Online = Online(),
                 evaluation: Evaluation = Evaluation(), speed: Speed = Speed(), seed: int = 0) -> None:
        super().__init__()
        self.settings: EnvSettings = as_group(EnvSettings, env)
        self.data, self.optim, self.online = as_group(Data, data), as_group(Optim, optim), as_group(Online, online)
        self.objective_config = as_group(Objective, objective)
        self.evaluation, self.speed, self.seed = as_group(Evaluation, evaluation), as_group(Speed, speed), seed
        groups = {"data": self.data, "objective": self.objective_config, "optim": self.optim, "online": self.online,
                  "evaluation": self.evaluation, "speed": self.speed}  # saved as dicts: checkpoints load weights-only
        self.save_hyperparameters({"env": self.settings.to_dict(), "network": network, "seed": seed,
                                   **{name: asdict(group) for name, group in groups.items()}})
        self.objective = make_objective(online=self.online.enabled, **asdict(self.objective_config))
        check_demos_for(self.objective_config, self.data)
        self.q_net = build_q_network(network, num_actions(self.settings), self.settings.stack_size,
                                     self.settings.screen_size)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.agent = SoftQAgent(self.q_net, alpha=self.objective_config.alpha, gamma=self.objective_config.gamma,
                                settings=self.settings)
        self.batches: BatchSource | None = None
        self.update_loss = UpdateLoss(self.objective, self.q_net, self.target_net)
        self.automatic_optimization = not self.speed.whole_update  # the whole update steps Adam itself
        self.whole_update = WholeUpdate(self.objective, self.q_net, self.target_net, self._sample,
                                        target_tau=self.optim.target_tau,
                                        target_update_interval=self.optim.target_update_interval,
                                        before_update=self._act_before_update) if self.speed.whole_update else None
        self.collector: Collector | None = None
        self._last_log_time: float | None = None

    # ------------------------------------------------------------------ data and acting
    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device
        bf16 = resolve_precision(self.speed.precision, device) == "bf16"
        self.q_net.bf16_trunk = self.target_net.bf16_trunk = bf16
        torch.set_flush_denormal(self.speed.flush_denormal)  # for the whole process: it is one CPU flag
        if stage == "fit":
            self.batches = self.batches or self.build_batch_source(sampling_device(device, self.speed.device_replay))
            blocker = capture_blocker(device, bf16=bf16, grad_penalty=self.objective_config.grad_penalty,
                                      world_size=self.trainer.world_size)
            if self.whole_update is None:
                self.update_loss.configure(self.speed.capture, blocker)
            else:
                self.whole_update.configure(self.speed.capture, blocker, self.batches.generator, self.trainer.world_size)

    def build_batch_source(self, device: torch.device | None = None) -> BatchSource:
        """Batches from the demos (checked against the env settings) and, online, an empty policy
        replay; sampled on ``device`` if given, else on the host."""
        data, online, objective = self.data, self.online, self.objective
        return BatchSource.from_demos(data.demos, self.settings, num_demos=data.num_demos, batch_size=data.batch_size,
                                      policy_capacity=online.buffer_capacity if online.enabled else None,
                                      num_envs=online.num_envs, augment_shift=data.augment_shift,
                                      initial_states=objective.needs_initial_states, seed=self._rank_seed(),
                                      device=device, cache_dir=data.demo_cache, rewards=not objective.reads_demos,
                                      n_step=objective.n_step, gamma=self.objective_config.gamma)

    def on_fit_start(self) -> None:
        if (online := self.online).enabled and self.collector is None:
            assert self.batches is not None and self.batches.policy is not None
            resumed = self.batches.policy.written > 0  # a resumed run: its replay was loaded
            self.explorer = Explorer.for_online(self.agent, self.q_net.num_actions, online,
                                                seed=self._rank_seed() + 3 + 1000 * self.global_step)
            steps_before = env_steps_at_update(self.global_step, online) if resumed else 0
            self.collector = Collector(self.settings, online.num_envs, self.batches.policy,
                                       seed=self._rank_seed() + 1000 * self.global_step, env_steps_before=steps_before)
            if not resumed:
                warmup = self.explorer.warmup(online.warmup == "uniform", seed=self._rank_seed() + 2)
                self.collector.collect(warmup, -(-online.learning_starts // online.num_envs))

    def on_fit_end(self) -> None:
        if self.collector is not None:
            self.collector.close()
            self.collector = None

    def _rank_seed(self) -> int:
        """This process's seed: ``seed`` on rank 0 (and without DDP), distinct on every other rank."""
        return self.seed + RANK_SEED_STRIDE * self.global_rank

    def _sample(self) -> dict[str, torch.Tensor]:
        assert self.batches is not None
        return self.batches.sample(self.objective.reads_policy_rows)

    def train_dataloader(self) -> DataLoader:
        ahead = partial(self.batches.sample_ahead, self.objective.reads_policy_rows)  # Lightning fetches one ahead
        stream = BatchStream(dict if self.whole_update is not None else ahead)  # whole_update samples itself
        return DataLoader(stream, batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(OneDummyItem(), batch_size=None)

    test_dataloader = val_dataloader

    # ------------------------------------------------------------------ learning
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        if self.whole_update is not None:
            return self._whole_updates()
        self._act_before_update(self.global_step)
        loss = self.update_loss(batch)
        if self.global_step % self.trainer.log_every_n_steps == 0:  # reading values waits for the device
            self._check_and_log(loss.detach().clone(), batch)
        return loss

    def _act_before_update(self, update: int) -> None:
        """Online: the env steps due before update number ``update``, then their slots to the device replay."""
        if self.collector is not None and self.batches is not None:
            steps = env_steps_before_update(update, self.online.env_steps_per_update)
            self.collector.collect(self.explorer.policy(env_steps_at_update(update, self.online)), steps)
            self.batches.sync()  # sampling in a recorded graph cannot copy them itself

    def _whole_updates(self) -> torch.Tensor:
        assert self.whole_update is not None
        loss = run_updates(self.whole_update, self.optimizers(), self.global_step, self.speed.updates_per_step,
                           self.trainer.max_steps)
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self._check_and_log(loss.clone(), self.whole_update.last_batch)
        return loss

    def _check_and_log(self, loss: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        """The NaN check and training metrics, from a no-gradient pass (online, over a batch with policy rows)."""
        if self.collector is not None and self.batches is not None and not self.objective.reads_policy_rows:
            batch = self.batches.sample(diagnostic=True)  # apart from the training stream: logging changes nothing trained
        metrics = training_metrics(self.objective, self.q_net, self.target_net, batch, loss, method=self.objective_config.method,
                                   update=self.global_step, alpha=self.objective_config.alpha)
        now = time.perf_counter()
        if self._last_log_time is not None:
            metrics["train/updates_per_s"] = self.trainer.log_every_n_steps / (now - self._last_log_time)
        self._last_log_time = now
        if self.collector is not None:
            metrics.update(self.collector.metrics())
        if self.whole_update is None:
            self.log_dict(metrics, prog_bar=False)
        elif self.logger is not None:  # at the update count (Lightning logs training steps, of several updates)
            self.logger.log_metrics({key: float(value) for key, value in metrics.items()}, step=self.global_step)
        self.log("loss", loss.detach(), prog_bar=True, logger=False)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.whole_update is None and self.global_step % self.optim.target_update_interval == 0:
            polyak_update(self.target_net, self.q_net, self.optim.target_tau)

    def configure_optimizers(self) -> Any:
        if self.whole_update is not None:
            return self.whole_update.optimizer(self.optim.lr)
        # Fused: Adam's arithmetic in one pass over the weights (Nature CNN, 1 CPU thread: 11.8 -> 2.2 ms).
        return torch.optim.Adam(self.q_net.parameters(), lr=self.optim.lr, fused=True)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, seed: int, record_first: bool) -> EvaluationResult:
        return evaluate(self.agent.act, self.settings, self.evaluation.episodes, seed=seed, record_first=record_first)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        evaluation = self.evaluation
        result = self._evaluate(VALIDATION_SEED + self.seed, record_first=evaluation.video or evaluation.reward_correlation)
        # eval/updates: Lightning logs validation at the step index before the update count.
        metrics = validation_metrics(result, self.global_step, self.agent if evaluation.reward_correlation else None)
        metrics.update({"eval/env_steps": float(env_steps_at_update(self.global_step, self.online))} if self.online.enabled else {})
        episode = result.first_episode
        # Every rank played the same episodes with the same weights: syncing averages equal values.
        self.log_dict(metrics, prog_bar=False, sync_dist=True)
        self.log("eval_return", result.mean, prog_bar=True, logger=False, sync_dist=True)
        if evaluation.video and episode is not None:
            log_video(self.logger, "eval/video", episode.frames, self.global_step)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        # The same games for every agent, whatever seed it was trained with: agents are compared on them.
        result = self._evaluate(TEST_SEED, record_first=False)
        self.log_dict({"test/return_mean": result.mean, "test/return_std": result.std,
                       "test/length_mean": float(result.lengths.mean())}, sync_dist=True)
        if self.trainer.is_global_zero:
            print(f"\n{self.settings.game}: return {result.mean:.2f} ± {result.std:.2f} over "
                  f"{len(result.returns)} episodes (sticky actions {self.settings.sticky_actions}); "
                  f"returns: {result.returns.tolist()}; steps: {result.lengths.tolist()}")

    # ------------------------------------------------------------------ checkpoints
    def configure_callbacks(self) -> list[Callback]:
        # No checkpoint callbacks if the Trainer was made with enable_checkpointing=False.
        snapshot_every, optim = self.evaluation.snapshot_every, self.optim
        checkpoints = run_checkpoints(snapshot_every) if self.trainer.checkpoint_callbacks else []
        callbacks = [*checkpoints, LearningRateDrop(optim.lr, optim.lr_drop_at, optim.lr_drop_to)]
        if self.speed.whole_update:  # Lightning's loop around steps of several updates
            callbacks.append(UpdatesInSteps(self.speed.updates_per_step, snapshot_every=snapshot_every,
                                            lr_drop_at=optim.lr_drop_at))
        return callbacks

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["env_settings"] = self.settings.to_dict()
        if self.batches is not None and "optimizer_states" in checkpoint:  # not in weights-only snapshots
            checkpoint.update(self.batches.state_dict(one_batch_ahead=self.whole_update is None))

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        prepare_checkpoint_to_load(checkpoint, self.settings, fitting=self.trainer.state.fn == "fit")
        carry_update_count(checkpoint, self.speed.whole_update, self.speed.updates_per_step)
        if self.batches is not None:
            self.batches.load_state_dict(checkpoint)  # rank 0's state: other ranks move on to their own stream
            if self.global_rank > 0:
                self.batches.fork(self.global_rank)
