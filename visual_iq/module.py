"""IQ-Learn as a LightningModule: the module is the algorithm, the Trainer is the loop.

Offline (``online: false``): batches are sampled from the demonstrations only. Online: every
training step first acts ``env_steps_per_update`` steps in vectorised envs with the soft-Q policy
(softmax of Q/α) and stores them in a policy replay buffer; each batch is half expert, half
policy transitions. A target network (soft update) provides V(s'). Validation plays evaluation
episodes in the real env. ``method`` swaps the IQ objective for one of the baselines (behavioural
cloning, SQIL) while everything else (network, data, evaluation, logging) stays the same.
Everything a run depends on is an ``__init__`` argument, so LightningCLI exposes it in the YAML
config.
"""

from __future__ import annotations

import copy
import os
import pickle
import time
from pathlib import Path
from typing import Any, Iterator, Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint
from torch.utils.data import DataLoader, IterableDataset

from visual_iq.augment import random_shift
from visual_iq.baseline_losses import bc_loss, sqil_loss
from visual_iq.buffer import Batch, FrameReplayBuffer
from visual_iq.collector import Collector
from visual_iq.demos import load_episodes
from visual_iq.envs import EnvSettings, EnvSettingsError
from visual_iq.evaluation import evaluate
from visual_iq.iq_loss import Variant, iq_loss, soft_value
from visual_iq.networks import Precision, build_q_network, resolve_precision
from visual_iq.rewards import reward_correlations

# Settings that change what an observation looks like; a checkpoint only works with matching ones.
OBSERVATION_FIELDS = ("game", "frame_skip", "screen_size", "grayscale", "stack_size")


def action_agreement(q: torch.Tensor, actions: torch.Tensor) -> dict[str, torch.Tensor]:
    """How well the greedy policy argmax Q matches the demonstrator's ``actions``.

    ``expert_action_accuracy``: share of states where it picks the demonstrated action.
    ``expert_action_base_rate``: the accuracy of always playing the most common demonstrated
    action (a policy collapsed to NOOP scores this much on Pong demos, ~0.77).
    ``expert_action_balanced_accuracy``: per-action recall averaged over the actions present, so
    a collapse to one action scores 1/(number of actions present).
    """
    predicted = q.argmax(dim=1)
    counts = torch.bincount(actions, minlength=q.shape[1]).float()
    hits = torch.bincount(actions[predicted == actions], minlength=q.shape[1]).float()
    present = counts > 0
    return {
        "expert_action_accuracy": (predicted == actions).float().mean(),
        "expert_action_base_rate": counts.max() / counts.sum(),
        "expert_action_balanced_accuracy": (hits[present] / counts[present]).mean(),
    }


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite."""


class _BatchStream(IterableDataset):
    """An endless stream of batches sampled by ``sample()``; the DataLoader must not re-batch."""

    def __init__(self, sample) -> None:
        self.sample = sample

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.sample()


class _Once(IterableDataset):
    """One dummy item: validation and test steps play episodes instead of reading data."""

    def __iter__(self):
        yield torch.zeros(1)


def check_observation_settings(saved: EnvSettings, wanted: EnvSettings, what: str) -> None:
    """Raise ValueError naming the fields if ``saved`` produces different observations."""
    differences = [d for d in saved.differences(wanted) if d.split(":")[0] in OBSERVATION_FIELDS]
    if differences:
        raise ValueError(f"{what} was made with different env settings: " + "; ".join(differences))


class IQLearn(L.LightningModule):
    """Inverse soft-Q learning (IQ-Learn) from pixels.

    Args:
        game: Atari game (``Pong``, ``ALE/Pong-v5``, ...) or ``visual_iq/Catch-v0``.
        demos: directory of demonstration episodes.
        num_demos: use only the first N demo episodes (None: all).
        online: also act in the env and learn from policy samples (50/50 with expert samples).
        method: ``iq`` (IQ-Learn), or a baseline on the same network and data: ``bc`` (behavioural
            cloning of softmax(Q/α)) or ``sqil`` (soft Q-learning, reward 1 expert / 0 policy; online).
        variant: value term of the IQ loss: ``value_expert`` (offline), ``value`` (online), ``v0``.
        network: ``nature`` (Nature-DQN CNN) or ``small`` (2-conv CPU-friendly CNN).
        alpha: entropy temperature of the soft-Q policy (V = α·logsumexp(Q/α)).
        gamma: discount.
        chi2_alpha: χ² regulariser weight 1/(4·chi2_alpha); null disables it.
        grad_penalty: weight of a gradient penalty on V between expert and policy states (online).
        lr: Adam learning rate.
        batch_size: transitions per source per update (online batches are 2x this).
        augment_shift: random-shift augmentation of sampled observations by up to this many
            pixels (DrQ; 0 disables). Acting and evaluation always see unshifted frames.
        target_tau: soft target-network update rate per update (1.0 = hard copy).
        target_update_interval: updates between target-network updates.
        precision: ``auto`` (bf16 only on a CPU with native bf16), ``32``, or ``bf16`` (bf16 autocast of
            the convolutions only; Q values, losses and action choice are always fp32).
        sticky_actions: sticky-action probability of the acting and evaluation envs.
        noop_max: random no-ops after reset in acting and evaluation envs.
        num_envs: vectorised envs for online acting.
        env_steps_per_update: steps per env between updates (online).
        buffer_capacity: policy replay slots per env (online).
        learning_starts: policy transitions collected before the first update (online).
        eval_episodes: episodes per validation / test run.
        eval_video: log a GIF of an evaluation episode to TensorBoard.
        eval_reward_correlation: log how well the implicit reward tracks the true reward (Pearson
            and Spearman per step) along the first evaluation episode.
        seed: seed of sampling, acting and evaluation.
    """

    def __init__(
        self,
        game: str = "Pong",
        demos: str = "demos/pong",
        num_demos: int | None = None,
        online: bool = False,
        method: Literal["iq", "bc", "sqil"] = "iq",
        variant: Variant = "value_expert",
        network: Literal["nature", "small"] = "small",
        alpha: float = 0.01,
        gamma: float = 0.99,
        chi2_alpha: float | None = 0.5,
        grad_penalty: float = 0.0,
        lr: float = 1e-4,
        batch_size: int = 32,
        augment_shift: int = 0,
        target_tau: float = 0.005,
        target_update_interval: int = 1,
        precision: Precision = "auto",
        sticky_actions: float = 0.25,
        noop_max: int = 30,
        num_envs: int = 4,
        env_steps_per_update: int = 1,
        buffer_capacity: int = 25_000,
        learning_starts: int = 1_000,
        eval_episodes: int = 8,
        eval_video: bool = True,
        eval_reward_correlation: bool = True,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if grad_penalty > 0 and not online:
            raise ValueError("grad_penalty needs policy samples: set online: true")
        if method == "sqil" and not online:
            raise ValueError("sqil learns from policy samples (reward 0) as well as expert ones: set online: true")
        if method not in ("iq", "bc", "sqil"):
            raise ValueError(f"unknown method {method!r}; choose iq, bc or sqil")
        self.settings = EnvSettings(game, sticky_actions=sticky_actions, noop_max=noop_max)
        num_actions = self._num_actions(self.settings)
        self.q_net = build_q_network(network, num_actions, self.settings.stack_size, self.settings.screen_size)
        self.target_net = copy.deepcopy(self.q_net).requires_grad_(False)
        self.rng = np.random.default_rng(seed)
        self.expert_buffer: FrameReplayBuffer | None = None
        self.policy_buffer: FrameReplayBuffer | None = None
        self.collector: Collector | None = None
        self._pending_buffer_state: dict[str, Any] | None = None
        self._last_log_time: float | None = None

    @staticmethod
    def _num_actions(settings: EnvSettings) -> int:
        from visual_iq.envs import make_env

        env = make_env(settings)
        try:
            return int(env.action_space.n)
        finally:
            env.close()

    # ------------------------------------------------------------------ acting
    @torch.no_grad()
    def act(self, observations: np.ndarray, sample: bool = False) -> np.ndarray:
        """Actions for a batch of uint8 observations: greedy, or sampled from softmax(Q/α)."""
        q = self.q_net(torch.as_tensor(observations, device=self.device)).float()
        if sample:
            return torch.distributions.Categorical(logits=q / self.hparams.alpha).sample().cpu().numpy()
        return q.argmax(dim=1).cpu().numpy()

    # ------------------------------------------------------------------ data
    def setup(self, stage: str) -> None:
        device = self._trainer.strategy.root_device if self._trainer is not None else self.device
        bf16 = resolve_precision(self.hparams.precision, device) == "bf16"
        self.q_net.bf16_trunk = self.target_net.bf16_trunk = bf16
        if stage != "fit" or self.expert_buffer is not None:
            return
        episodes = load_episodes(self.hparams.demos, limit=self.hparams.num_demos)
        check_observation_settings(episodes[0].settings, self.settings, f"demos in {self.hparams.demos}")
        self.expert_buffer = FrameReplayBuffer.from_episodes(episodes)
        if self.hparams.online:
            self.policy_buffer = FrameReplayBuffer(
                self.hparams.buffer_capacity, self.hparams.num_envs,
                (self.settings.screen_size,) * 2, self.settings.stack_size,
            )
            if self._pending_buffer_state is not None:
                self.policy_buffer.load_state_dict(self._pending_buffer_state)
                self._pending_buffer_state = None

    def on_fit_start(self) -> None:
        if self.hparams.online and self.collector is None:
            assert self.policy_buffer is not None
            resumed = self.policy_buffer.written > 0
            self.collector = Collector(self.settings, self.hparams.num_envs, self.policy_buffer,
                                       seed=self.hparams.seed + 1000 * self.global_step)
            if not resumed:
                warmup = -(-self.hparams.learning_starts // self.hparams.num_envs)
                self.collector.collect(lambda obs: self.act(obs, sample=True), warmup)

    def on_fit_end(self) -> None:
        if self.collector is not None:
            self.collector.close()
            self.collector = None

    def _sample_batch(self) -> dict[str, torch.Tensor]:
        assert self.expert_buffer is not None
        parts: list[Batch] = [self.expert_buffer.sample(self.hparams.batch_size, self.rng)]
        if self.hparams.online:
            assert self.policy_buffer is not None
            parts.append(self.policy_buffer.sample(self.hparams.batch_size, self.rng))
        batch = {
            key: torch.cat([getattr(part, key) for part in parts])
            for key in ("observations", "actions", "next_observations", "terminated")
        }
        batch["is_expert"] = torch.arange(len(batch["actions"])) < self.hparams.batch_size
        if self.hparams.variant == "v0":
            batch["initial_observations"] = self.expert_buffer.sample_initial_observations(
                self.hparams.batch_size, self.rng)
        for key in ("observations", "next_observations", "initial_observations"):
            if key in batch:
                batch[key] = random_shift(batch[key], self.hparams.augment_shift, self.rng)
        return batch

    def train_dataloader(self) -> DataLoader:
        return DataLoader(_BatchStream(self._sample_batch), batch_size=None, num_workers=0)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(_Once(), batch_size=None)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(_Once(), batch_size=None)

    # ------------------------------------------------------------------ learning
    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        hp = self.hparams
        if hp.online:
            assert self.collector is not None
            self.collector.collect(lambda obs: self.act(obs, sample=True), hp.env_steps_per_update)
        observations, is_expert = batch["observations"], batch["is_expert"]
        q = self.q_net(observations)
        loss, terms = self._objective(batch, q)
        if hp.grad_penalty > 0:
            terms["grad_penalty"] = self._grad_penalty(observations[is_expert], observations[~is_expert])
            loss = loss + hp.grad_penalty * terms["grad_penalty"]
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"the {hp.method.upper()} loss became {loss.item()} at update {self.global_step} (terms: "
                + ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
                + "); lower lr or alpha, or enable the chi2 regulariser"
            )
        self._log_training(loss, terms, q.detach(), batch["actions"], is_expert)
        return loss

    def _objective(self, batch: dict[str, torch.Tensor], q: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The chosen method's loss and terms for online Q values ``q`` of the batch states."""
        hp = self.hparams
        if hp.method == "bc":
            return bc_loss(q, batch["actions"], batch["is_expert"], alpha=hp.alpha)
        with torch.no_grad():
            next_v = soft_value(self.target_net(batch["next_observations"]).float(), hp.alpha)
        if hp.method == "sqil":
            return sqil_loss(q, batch["actions"], next_v, batch["terminated"], batch["is_expert"], gamma=hp.gamma)
        initial_v = None
        if hp.variant == "v0":
            initial_v = soft_value(self.q_net(batch["initial_observations"]).float(), hp.alpha)
        return iq_loss(
            q, batch["actions"], next_v, batch["terminated"], batch["is_expert"],
            alpha=hp.alpha, gamma=hp.gamma, variant=hp.variant, chi2_alpha=hp.chi2_alpha,
            initial_v=initial_v,
        )

    def _grad_penalty(self, expert: torch.Tensor, policy: torch.Tensor) -> torch.Tensor:
        """(‖∇_s V(s)‖ − 1)² at random interpolations of expert and policy states."""
        count = min(len(expert), len(policy))
        mix = torch.rand(count, 1, 1, 1, device=expert.device)
        states = (mix * expert[:count].float() + (1 - mix) * policy[:count].float()).requires_grad_(True)
        v = soft_value(self.q_net(states).float(), self.hparams.alpha)
        (gradient,) = torch.autograd.grad(v.sum(), states, create_graph=True)
        return ((gradient.flatten(1).norm(dim=1) - 1) ** 2).mean()

    def _log_training(self, loss: torch.Tensor, terms: dict[str, torch.Tensor], q: torch.Tensor,
                      actions: torch.Tensor, is_expert: torch.Tensor) -> None:
        if self.global_step % self.trainer.log_every_n_steps:
            return
        alpha = self.hparams.alpha
        v = soft_value(q, alpha)
        log_pi = torch.log_softmax(q / alpha, dim=1)
        entropy = -(log_pi.exp() * log_pi).sum(dim=1)
        metrics = {"train/loss": loss.detach(), **{f"train/{k}": t for k, t in terms.items()}}
        metrics["train/q_expert"] = q[is_expert].max(dim=1).values.mean()
        metrics["train/v_expert"] = v[is_expert].mean()
        metrics["train/entropy_expert"] = entropy[is_expert].mean()
        metrics.update({f"train/{k}": v for k, v in action_agreement(q[is_expert], actions[is_expert]).items()})
        if (~is_expert).any():
            metrics["train/q_policy"] = q[~is_expert].max(dim=1).values.mean()
            metrics["train/v_policy"] = v[~is_expert].mean()
            metrics["train/entropy_policy"] = entropy[~is_expert].mean()
        now = time.perf_counter()
        if self._last_log_time is not None:
            metrics["train/updates_per_s"] = self.trainer.log_every_n_steps / (now - self._last_log_time)
        self._last_log_time = now
        if self.collector is not None:
            metrics["rollout/env_steps_per_s"] = self.collector.steps_per_second()
            metrics["rollout/env_steps"] = float(self.collector.env_steps)
            if self.collector.finished_returns:
                metrics["rollout/return_mean"] = float(np.mean(self.collector.finished_returns))
        self.log_dict(metrics, prog_bar=False)
        self.log("loss", loss.detach(), prog_bar=True, logger=False)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.global_step % self.hparams.target_update_interval == 0:
            tau = self.hparams.target_tau
            with torch.no_grad():
                for target, online in zip(self.target_net.parameters(), self.q_net.parameters()):
                    target.lerp_(online, tau)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.q_net.parameters(), lr=self.hparams.lr)

    # ------------------------------------------------------------------ evaluation
    def _evaluate(self, record_first: bool, seed_base: int):
        # Validation (which picks the best checkpoint) and test play different episodes, so a
        # test of the best checkpoint is not the evaluation that selected it.
        seed = seed_base + self.hparams.seed
        return evaluate(lambda obs: self.act(obs), self.settings, self.hparams.eval_episodes,
                        seed=seed, record_first=record_first)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        hp = self.hparams
        result = self._evaluate(record_first=hp.eval_video or hp.eval_reward_correlation, seed_base=10_000)
        # eval/updates: Lightning logs validation at the step index before the update count.
        metrics = {"eval/return_mean": result.mean, "eval/return_std": result.std,
                   "eval/length_mean": float(result.lengths.mean()), "eval/updates": float(self.global_step)}
        episode = result.first_episode
        if hp.eval_reward_correlation and episode is not None:
            correlations = reward_correlations(self.q_net, [episode], alpha=hp.alpha, gamma=hp.gamma)
            for name in ("step_pearson", "step_spearman"):  # NaN if the true reward never changed
                if np.isfinite(correlations[name]):
                    metrics[f"eval/reward_{name}"] = correlations[name]
        self.log_dict(metrics, prog_bar=False)
        self.log("eval_return", result.mean, prog_bar=True, logger=False)
        if hp.eval_video and episode is not None:
            self._log_video(episode.frames)

    def _log_video(self, frames: np.ndarray, max_frames: int = 600) -> None:
        experiment = getattr(self.logger, "experiment", None)
        if experiment is None or not hasattr(experiment, "add_video"):
            return
        # add_video imports moviepy, whose pygame preview would otherwise probe for a display and audio.
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
        clip = torch.from_numpy(frames[:max_frames]).unsqueeze(1).unsqueeze(0)  # (1, T, 1, H, W)
        experiment.add_video("eval/video", clip.repeat(1, 1, 3, 1, 1), self.global_step, fps=15)

    def test_step(self, batch: Any, batch_idx: int) -> None:
        result = self._evaluate(record_first=False, seed_base=20_000)
        self.log_dict({"test/return_mean": result.mean, "test/return_std": result.std})
        print(f"\n{self.settings.game}: return {result.mean:.2f} ± {result.std:.2f} over "
              f"{len(result.returns)} episodes (sticky actions {self.settings.sticky_actions}); "
              f"returns: {result.returns.tolist()}")

    # ------------------------------------------------------------------ checkpoints
    def configure_callbacks(self) -> list[Callback]:
        # Best by evaluation return, and the newest one (``last.ckpt``) after every evaluation;
        # none if the Trainer was made with enable_checkpointing=False.
        if not self.trainer.checkpoint_callbacks:
            return []
        best = ModelCheckpoint(monitor="eval/return_mean", mode="max", save_top_k=1,
                               filename="best-{step}-{eval/return_mean:.1f}", auto_insert_metric_name=False)
        last = ModelCheckpoint(filename="last", save_top_k=1, enable_version_counter=False)
        return [best, last]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["env_settings"] = self.settings.to_dict()
        checkpoint["sampling_rng"] = self.rng.bit_generator.state
        if self.policy_buffer is not None:
            state = self.policy_buffer.state_dict()
            checkpoint["policy_buffer"] = {
                k: torch.from_numpy(v) if isinstance(v, np.ndarray) else v for k, v in state.items()
            }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        saved = checkpoint.get("env_settings")
        if saved is None:
            raise ValueError("checkpoint has no env settings: not a visual-iq checkpoint")
        check_observation_settings(EnvSettings.from_dict(saved), self.settings, "the checkpoint")
        if checkpoint.get("exported_agent"):
            if self.trainer.state.fn == "fit":
                raise ValueError("an exported agent checkpoint holds only the network, not the optimizer or "
                                 "replay state: it can be tested, recorded and analysed, not resumed")
            checkpoint["state_dict"] = _with_target_network(checkpoint["state_dict"])
        if "sampling_rng" in checkpoint:
            self.rng.bit_generator.state = checkpoint["sampling_rng"]
        if "policy_buffer" in checkpoint:
            state = {k: v.numpy() if isinstance(v, torch.Tensor) else v
                     for k, v in checkpoint["policy_buffer"].items()}
            if self.policy_buffer is not None:
                self.policy_buffer.load_state_dict(state)
            else:
                self._pending_buffer_state = state


def load_agent(ckpt_path: str | Path, settings: EnvSettings | None = None) -> IQLearn:
    """A trained `IQLearn` on CPU in eval mode, for acting (recording, reward analysis).

    The checkpoint is read with ``weights_only=True`` (no code runs from the file). If
    ``settings`` is given, a checkpoint trained on different observations is refused with a
    ValueError that names the file and the differing fields.
    """
    return _load_agent_and_checkpoint(ckpt_path, settings)[0]


def _load_agent_and_checkpoint(
    ckpt_path: str | Path, settings: EnvSettings | None = None
) -> tuple[IQLearn, dict[str, Any]]:
    """`load_agent`, also returning the checkpoint dict it was built from (read once)."""
    path = Path(ckpt_path)
    if not path.is_file():
        raise ValueError(f"{path}: no such checkpoint file")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        saved = EnvSettings.from_dict(checkpoint["env_settings"])
        hyper_parameters = dict(checkpoint["hyper_parameters"])
        state_dict = checkpoint["state_dict"]
    except (KeyError, TypeError, EnvSettingsError, RuntimeError, pickle.UnpicklingError) as error:
        raise ValueError(f"{path}: not a visual-iq checkpoint ({type(error).__name__}: {error})") from None
    if settings is not None:
        check_observation_settings(saved, settings, f"checkpoint {path}")
    hyper_parameters.pop("_instantiator", None)
    model = IQLearn(**hyper_parameters)
    model.load_state_dict(_with_target_network(state_dict))
    return model.eval(), checkpoint


def _with_target_network(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """An exported agent stores only ``q_net``; its target network starts as a copy of it."""
    if any(key.startswith("target_net.") for key in state_dict):
        return state_dict
    return {**state_dict, **{"target_net." + key[len("q_net."):]: value
                             for key, value in state_dict.items() if key.startswith("q_net.")}}


def export_agent(ckpt_path: str | Path, out_path: str | Path) -> Path:
    """Write a small checkpoint of a trained agent: the online network, hparams and env settings.

    It drops the target network, optimizer state and loop state (about 4x smaller for the Nature
    CNN), and still works with ``visual-iq test/validate --ckpt_path``, `load_agent`,
    ``tools/record.py --source agent`` and ``tools/reward.py``; it cannot resume training.
    The write is atomic.
    """
    # Building the agent refuses anything that is not a usable visual-iq checkpoint, naming the file.
    _, checkpoint = _load_agent_and_checkpoint(ckpt_path)
    exported = {
        "exported_agent": True,
        "pytorch-lightning_version": checkpoint["pytorch-lightning_version"],
        "epoch": checkpoint.get("epoch", 0),
        "global_step": checkpoint.get("global_step", 0),
        "state_dict": {k: v for k, v in checkpoint["state_dict"].items() if k.startswith("q_net.")},
        "hparams_name": checkpoint.get("hparams_name", "kwargs"),
        "hyper_parameters": checkpoint["hyper_parameters"],
        "env_settings": checkpoint["env_settings"],
    }
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)
    temporary = out.with_name(out.name + ".tmp")
    torch.save(exported, temporary)
    os.replace(temporary, out)
    return out
