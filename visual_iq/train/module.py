"""IQ-Learn as a LightningModule: the module is the algorithm, the Trainer is the loop.

It composes the pieces: a soft-Q network and its target (`visual_iq.algo.networks`), an objective
chosen once (`visual_iq.algo.objectives`: IQ-Learn, or the BC / SQIL baselines on the same network and
data), a batch source (`visual_iq.data.batches`) over the demonstrations and, online, a policy replay
that a `Collector` fills by acting with the soft-Q policy before every update. Validation plays
evaluation episodes with the greedy policy. Every setting is an ``__init__`` argument, so
LightningCLI exposes it in the YAML config.
"""

from __future__ import annotations

import copy
import time
from typing import Any, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader

from visual_iq.algo.agent import SoftQAgent, prepare_checkpoint_to_load
from visual_iq.data.batches import BatchSource, BatchStream, OneDummyItem, sampling_device
from visual_iq.train.gpu.capture import UpdateLoss, capture_blocker
from visual_iq.train.checkpoints import run_checkpoints
from visual_iq.train.collector import Collector, env_steps_before_update
from visual_iq.env.envs import NOOP_MAX, STICKY_ACTIONS, EnvSettings, num_actions
from visual_iq.train.evaluation import TEST_SEED, VALIDATION_SEED, EvaluationResult, evaluate, log_video, validation_metrics
from visual_iq.train.hyperparameters import check_hyperparameters
from visual_iq.algo.losses import Variant
from visual_iq.algo.networks import Precision, build_q_network, polyak_update, resolve_precision
from visual_iq.algo.objectives import Method, NextValue, make_objective, training_metrics
from visual_iq.train.rollout import Policy, uniform_policy
from visual_iq.train.schedule import LearningRateDrop
from visual_iq.train.gpu.whole_update import UpdatesInSteps, WholeUpdate, carry_update_count, run_updates

ENDLESS_STREAM_TRAINER_FLAGS: dict[str, Any] = {"max_epochs": -1, "check_val_every_n_epoch": None,
                                                "num_sanity_val_steps": 0}
"""Trainer flags the endless batch stream needs: run length from ``max_steps``, validation every
``val_check_interval`` updates."""

RANK_SEED_STRIDE = 1_000_003
"""Seed offset between DDP processes (large, so no rank's seeds meet another's)."""


class IQLearn(L.LightningModule):
    """Inverse soft-Q learning (IQ-Learn) from pixels.

    Args:
        game: Atari game (``Pong``, ``ALE/Pong-v5``, ...) or ``visual_iq/Catch-v0``.
        demos: directory of demonstration episodes, or a list of them (read in that order).
        num_demos: use only the first N demo episodes (None: all; more than there are is an error).
        demo_cache: directory to decode the demo frames into once and memory-map (runs share them); null: none.
        online: also act in the env and learn from policy samples (50/50 with expert samples, if read).
        method: ``iq`` (IQ-Learn), or a baseline on the same network and data: ``bc`` (behavioural
            cloning of softmax(Q/α)) or ``sqil`` (soft Q-learning, reward 1 expert / 0 policy; online).
        variant: value term of the IQ loss: ``value_expert`` (offline), ``value`` (online), ``v0``.
        network: ``nature`` (Nature-DQN CNN), ``small`` (2-conv CNN); ``_dueling``: with a dueling head.
        alpha: entropy temperature of the soft-Q policy (V = α·logsumexp(Q/α)).
        gamma: discount.
        chi2_alpha: χ² regulariser weight 1/(4·chi2_alpha); null disables it.
        chi2_rows: rows the χ² term averages over: ``expert``, ``all`` (expert and policy rows: the
            official ``method.regularize``), ``auto`` (``all`` for the ``value`` variant, else ``expert``).
        grad_penalty: weight of a gradient penalty on V between expert and policy states (online IQ).
        lr: Adam learning rate.
        lr_drop_at, lr_drop_to: train at ``lr_drop_to`` from update ``lr_drop_at`` on (`visual_iq.train.schedule`).
        batch_size: transitions per source per update (2x online, if the objective reads policy rows).
        augment_shift: random-shift augmentation of sampled observations by up to this many
            pixels (DrQ; 0 disables). Acting and evaluation always see unshifted frames.
        target_tau: soft target-network update rate per update (1.0 = hard copy).
        target_update_interval: updates between target-network updates.
        next_value: V(s') from the ``target`` network (no gradient) or the ``online`` one (with gradient, as official).
        precision: ``auto`` (bf16 only on a CPU with native bf16), ``32``, or ``bf16`` (bf16 autocast of
            the convolutions only; Q values, losses and action choice are always fp32).
        sticky_actions: sticky-action probability of the acting and evaluation envs.
        noop_max: random no-ops after reset in acting and evaluation envs.
        frame_skip: emulator frames per agent step (the demos must have been recorded with it).
        stack_size: frames per observation (demos of any stack size work: frames are stored once).
        crop_top, crop_bottom: screen rows dropped above / below before resizing (Pong's playfield: 34, 16).
        screen_size: side of the square frames (84 as in DQN; the demos' must match: ``visual-iq demos render``).
        terminal_on_life_loss: acting envs end an episode when a life is lost (evaluation too).
        fire_on_new_life: FIRE is pressed for the agent at every episode's and life's start (Breakout).
        num_envs: vectorised envs for online acting.
        env_steps_per_update: steps of every env per update (online); below 1, one step every
            1/x updates (0.25: every 4th update), so updates per env step can be 1 or more.
        buffer_capacity: policy replay slots per env (online).
        learning_starts: policy transitions collected before the first update (online).
        warmup: who acts for those: ``policy`` (the soft-Q policy) or ``uniform`` (random, as official).
        eval_episodes: episodes per validation / test run.
        eval_video: log a GIF of an evaluation episode to TensorBoard.
        eval_reward_correlation: log the implicit reward's correlation with the true one along it.
        snapshot_every: also keep a checkpoint every N updates (``snap-<step>.ckpt``) to average with ``visual-iq export``.
        device_replay: sample on the training device from a copy of the replay there (null: on a GPU only).
        capture: replay the loss's forward and backward from CUDA graphs (`visual_iq.train.gpu.capture`);
            null: wherever possible (one CUDA process, fp32, no gradient penalty).
        whole_update: sample, learn and step Adam inside the training step, on a GPU replayed as one
            CUDA graph (`visual_iq.train.gpu.whole_update`; one process).
        updates_per_step: updates per Lightning training step (``whole_update``; what Lightning counts in
            steps, e.g. ``val_check_interval``, must be a multiple; weight averaging acts once per step).
        seed: seed of sampling, acting and evaluation (under DDP each rank samples and acts with its own).
    """

    def __init__(
        self,
        game: str = "Pong",
        demos: str | list[str] = "demos/pong",
        num_demos: int | None = None,
        demo_cache: str | None = None,
        online: bool = False,
        method: Method = "iq",
        variant: Variant = "value_expert",
        network: Literal["nature", "small", "nature_dueling", "small_dueling"] = "small",
        alpha: float = 0.01,
        gamma: float = 0.99,
        chi2_alpha: float | None = 0.5,
        chi2_rows: Literal["auto", "expert", "all"] = "auto",
        grad_penalty: float = 0.0,
        lr: float = 1e-4,
        lr_drop_at: int | None = None,
        lr_drop_to: float | None = None,
        batch_size: int = 32,
        augment_shift: int = 0,
        target_tau: float = 0.005,
        target_update_interval: int = 1,
        next_value: NextValue = "target",
        precision: Precision = "auto",
        sticky_actions: float = STICKY_ACTIONS,
        noop_max: int = NOOP_MAX,
        frame_skip: int = 4,
        stack_size: int = 4,
        crop_top: int = 0, crop_bottom: int = 0, screen_size: int = 84,  # the frames' geometry
        terminal_on_life_loss: bool = False,
        fire_on_new_life: bool = False,
        num_envs: int = 4,
        env_steps_per_update: float = 1.0,
        buffer_capacity: int = 25_000,
        learning_starts: int = 1_000,
        warmup: Literal["policy", "uniform"] = "policy",
        eval_episodes: int = 8,
        eval_video: bool = True,
        eval_reward_correlation: bool = True,
        snapshot_every: int | None = None,
        device_replay: bool | None = None,
        capture: bool | None = None,
        whole_update: bool = False,
        updates_per_step: int = 1,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        check_hyperparameters(self.hparams)
        self.settings = EnvSettings(game, sticky_actions=sticky_actions, noop_max=noop_max, frame_skip=frame_skip,
                                    stack_size=stack_size, screen_size=screen_size, crop_top=crop_top,
                                    crop_bottom=crop_bottom, terminal_on_life_loss=terminal_on_life_loss,
                                    fire_on_new_life=fire_on_new_life)
        self.objective = make_objective(method, online=online, alpha=alpha, gamma=gamma, variant=variant,
                                        chi2_alpha=chi2_alpha, chi2_rows=chi2_rows, grad_penalty=grad_penalty,
                                        next_value=next_value)
        self.q_net = build_q_network(network, num_actions(self.settings), stack_size, self.settings.screen_size)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.agent = SoftQAgent(self.q_net, alpha=alpha, gamma=gamma, settings=self.settings)
        self.batches: BatchSource | None = None
        self.update_loss = UpdateLoss(self.objective, self.q_net, self.target_net)
        self.automatic_optimization = not whole_update  # the whole update steps Adam itself
        self.whole_update = WholeUpdate(self.objective, self.q_net, self.target_net, self._sample,
                                        target_tau=target_tau, target_update_interval=target_update_interval,
                                        before_update=self._act_before_update) if whole_update else None
        self.collector: Collector | None = None
        self._last_log_time: float | None = None

    # ------------------------------------------------------------------ data and acting
    def setup(self, stage: str) -> None:
        device = self.trainer.strategy.root_device
        bf16 = resolve_precision(self.hparams.precision, device) == "bf16"
        self.q_net.bf16_trunk = self.target_net.bf16_trunk = bf16
        if stage == "fit":
            self.batches = self.batches or self.build_batch_source(sampling_device(device, self.hparams.device_replay))
            blocker = capture_blocker(device, bf16=bf16, grad_penalty=self.hparams.grad_penalty,
                                      world_size=self.trainer.world_size)
            if self.whole_update is None:
                self.update_loss.configure(self.hparams.capture, blocker)
            else:
                self.whole_update.configure(self.hparams.capture, blocker, self.batches.generator, self.trainer.world_size)

    def build_batch_source(self, device: torch.device | None = None) -> BatchSource:
        """Batches from the demos (checked against the env settings) and, online, an empty policy
        replay; sampled on ``device`` if given, else on the host."""
        hp = self.hparams
        return BatchSource.from_demos(hp.demos, self.settings, num_demos=hp.num_demos, batch_size=hp.batch_size,
                                      policy_capacity=hp.buffer_capacity if hp.online else None,
                                      num_envs=hp.num_envs, augment_shift=hp.augment_shift,
                                      initial_states=self.objective.needs_initial_states, seed=self._rank_seed(),
                                      device=device, cache_dir=hp.demo_cache)

    def on_fit_start(self) -> None:
        hp = self.hparams
        if hp.online and self.collector is None:
            assert self.batches is not None and self.batches.policy is not None
            resumed = self.batches.policy.written > 0
            self.collector = Collector(self.settings, hp.num_envs, self.batches.policy,
                                       seed=self._rank_seed() + 1000 * self.global_step)
            if not resumed:
                self.collector.collect(self._warmup_policy(), -(-hp.learning_starts // hp.num_envs))

    def on_fit_end(self) -> None:
        if self.collector is not None:
            self.collector.close()
            self.collector = None

    def _explore(self, observations: np.ndarray) -> np.ndarray:
        return self.agent.act(observations, sample=True)

    def _warmup_policy(self) -> Policy:
        uniform = self.hparams.warmup == "uniform"
        return uniform_policy(self.q_net.num_actions, seed=self._rank_seed() + 2) if uniform else self._explore

    def _rank_seed(self) -> int:
        """This process's seed: ``seed`` on rank 0 (and without DDP), distinct on every other rank."""
        return self.hparams.seed + RANK_SEED_STRIDE * self.global_rank

    def _sample(self) -> dict[str, torch.Tensor]:
        assert self.batches is not None
        return self.batches.sample(self.objective.reads_policy_rows)

    def train_dataloader(self) -> DataLoader:
        stream = BatchStream(dict if self.whole_update is not None else self._sample)  # whole_update samples itself
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
            self.collector.collect(self._explore, env_steps_before_update(update, self.hparams.env_steps_per_update))
            self.batches.sync()  # sampling in a recorded graph cannot copy them itself

    def _whole_updates(self) -> torch.Tensor:
        assert self.whole_update is not None
        loss = run_updates(self.whole_update, self.optimizers(), self.global_step, self.hparams.updates_per_step,
                           self.trainer.max_steps)
        if self.global_step % self.trainer.log_every_n_steps == 0:
            self._check_and_log(loss.clone(), self.whole_update.last_batch)
        return loss

    def _check_and_log(self, loss: torch.Tensor, batch: dict[str, torch.Tensor]) -> None:
        """The NaN check and training metrics, from a no-gradient pass (online, over a batch with policy rows)."""
        if self.collector is not None and self.batches is not None and not self.objective.reads_policy_rows:
            batch = self.batches.sample(diagnostic=True)  # apart from the training stream: logging changes nothing trained
        metrics = training_metrics(self.objective, self.q_net, self.target_net, batch, loss, method=self.hparams.method,
                                   update=self.global_step, alpha=self.hparams.alpha)
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
        if self.whole_update is None and self.global_step % self.hparams.target_update_interval == 0:
            polyak_update(self.target_net, self.q_net, self.hparams.target_tau)

    def configure_optimizers(self) -> Any:
        if self.whole_update is not None:
            return self.whole_update.optimizer(self.hparams.lr)
        # Fused: Adam's arithmetic in one pass over the weights (Nature CNN, 1 CPU thread: 11.8 -> 2.2 ms).
        return torch.optim.Adam(self.q_net.parameters(), lr=self.hparams.lr, fused=True)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, seed: int, record_first: bool) -> EvaluationResult:
        return evaluate(self.agent.act, self.settings, self.hparams.eval_episodes, seed=seed, record_first=record_first)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        hp = self.hparams
        result = self._evaluate(VALIDATION_SEED + hp.seed, record_first=hp.eval_video or hp.eval_reward_correlation)
        # eval/updates: Lightning logs validation at the step index before the update count.
        metrics = validation_metrics(result, self.global_step, self.agent if hp.eval_reward_correlation else None)
        episode = result.first_episode
        # Every rank played the same episodes with the same weights: syncing averages equal values.
        self.log_dict(metrics, prog_bar=False, sync_dist=True)
        self.log("eval_return", result.mean, prog_bar=True, logger=False, sync_dist=True)
        if hp.eval_video and episode is not None:
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
        checkpoints = run_checkpoints(self.hparams.snapshot_every) if self.trainer.checkpoint_callbacks else []
        hp = self.hparams
        callbacks = [*checkpoints, LearningRateDrop(hp.lr, hp.lr_drop_at, hp.lr_drop_to)]
        if hp.whole_update:  # Lightning's loop around steps of several updates
            callbacks.append(UpdatesInSteps(hp.updates_per_step, snapshot_every=hp.snapshot_every, lr_drop_at=hp.lr_drop_at))
        return callbacks

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["env_settings"] = self.settings.to_dict()
        if self.batches is not None and "optimizer_states" in checkpoint:  # not in weights-only snapshots
            checkpoint.update(self.batches.state_dict())

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        prepare_checkpoint_to_load(checkpoint, self.settings, fitting=self.trainer.state.fn == "fit")
        carry_update_count(checkpoint, self.hparams.whole_update, self.hparams.updates_per_step)
        if self.batches is not None:
            self.batches.load_state_dict(checkpoint)  # rank 0's state: other ranks move on to their own stream
            if self.global_rank > 0:
                self.batches.fork(self.global_rank)
