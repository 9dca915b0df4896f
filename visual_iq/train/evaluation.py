"""Evaluation episodes in the real env (sticky actions as configured), one per vectorised env.

They are whole games scored by the game's own points, whatever the training signals
(`EnvSettings.for_evaluation`: no end at a lost life, no reward clipping).

Validation (which picks the best checkpoint) and test play different episodes, so a test of the
best checkpoint is not the evaluation that selected it: their env seeds start at
`VALIDATION_SEED` plus the run's seed (each seed of a run is validated on its own games) and at
`TEST_SEED` (the same games for every agent, so that test returns compare agents, not games).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from visual_iq.algo.agent import SoftQAgent
from visual_iq.data.demos import Episode, EpisodeBuilder
from visual_iq.env.envs import EnvSettings
from visual_iq.analysis.rewards import reward_correlations
from visual_iq.train.rollout import Policy, VectorRollout

VALIDATION_SEED = 10_000
TEST_SEED = 20_000


@dataclass
class EvaluationResult:
    returns: np.ndarray
    """(episodes,) undiscounted returns."""
    lengths: np.ndarray
    """(episodes,) steps per episode."""
    first_episode: Episode | None
    """The first env's whole episode (frames, actions, rewards), if asked for: for a video and
    for checking the implicit reward against the true one."""

    @property
    def mean(self) -> float:
        return float(self.returns.mean())

    @property
    def std(self) -> float:
        return float(self.returns.std())


def validation_metrics(result: EvaluationResult, updates: int, agent: SoftQAgent | None = None) -> dict[str, float]:
    """The ``eval/`` metrics of a validation run after ``updates`` updates; with ``agent``, also how
    well its implicit reward tracks the true one along the first episode (if recorded)."""
    metrics = {"eval/return_mean": result.mean, "eval/return_std": result.std,
               "eval/length_mean": float(result.lengths.mean()), "eval/updates": float(updates)}
    if agent is not None and result.first_episode is not None:
        correlations = reward_correlations(agent, [result.first_episode])
        for name in ("step_pearson", "step_spearman"):  # NaN if the true reward never changed
            if np.isfinite(correlations[name]):
                metrics[f"eval/reward_{name}"] = correlations[name]
    return metrics


ENVS_AT_ONCE = 16
"""Evaluation episodes played side by side. ale-py steps every env of a vector env, finished or
not, so a group costs its longest episode times its size: one 27k-step Breakout game among 100
envs stepped the 99 finished ones with it (a 100-game test ran over 40 min instead of minutes)."""


def evaluate(
    policy: Policy,
    settings: EnvSettings,
    episodes: int,
    *,
    seed: int = VALIDATION_SEED,
    record_first: bool = False,
    max_steps: int = 30_000,
    envs_at_once: int = ENVS_AT_ONCE,
) -> EvaluationResult:
    """Play ``episodes`` full episodes with ``policy(observations) -> actions``, one per env.

    Episode i is played by an env reset with seed ``seed + i``, in groups of ``envs_at_once``
    envs, so the games are the same whatever the group size. Every env plays exactly one
    episode, so the result does not favour short episodes. Episodes still running after
    ``max_steps`` steps count as they stand. ``record_first``: also return the first env's
    episode as an `Episode`.
    """
    settings = settings.for_evaluation()  # whole games, the game's own score
    returns, lengths, first_episode = [], [], None
    for start in range(0, episodes, envs_at_once):
        group = _play_group(policy, settings, min(envs_at_once, episodes - start), seed + start,
                            record_first and start == 0, max_steps)
        returns.append(group.returns)
        lengths.append(group.lengths)
        first_episode = first_episode or group.first_episode
    return EvaluationResult(np.concatenate(returns), np.concatenate(lengths), first_episode)


def _play_group(policy: Policy, settings: EnvSettings, episodes: int, seed: int, record_first: bool,
                max_steps: int) -> EvaluationResult:
    """One episode in each of ``episodes`` envs stepped together (`evaluate`)."""
    rollout = VectorRollout(settings, episodes, seed)
    running = np.ones(episodes, bool)

    def act_where_running(observations: np.ndarray) -> np.ndarray:
        # A finished env plays on (autoreset) but is not counted: no network pass for it.
        actions = np.zeros(episodes, np.int64)
        actions[running] = policy(observations[running])
        return actions

    try:
        returns = np.zeros(episodes)
        lengths = np.zeros(episodes, np.int64)
        first = EpisodeBuilder(settings, rollout.observations[0], seed) if record_first else None
        for _ in range(max_steps):
            step = rollout.step(act_where_running)
            if first is not None and running[0]:
                first.add(int(step.actions[0]), float(step.rewards[0]), step.observations[0],
                          step.terminated[0], step.truncated[0])
            returns[running] = step.episode_returns[running]
            lengths[running] = step.episode_steps[running]
            running &= ~step.done
            if not running.any():
                break
    finally:
        rollout.close()
    episode = first.finish("agent") if first is not None and first.actions else None
    return EvaluationResult(returns, lengths, episode)


def log_video(logger: Any, tag: str, frames: np.ndarray, step: int, max_frames: int = 600) -> None:
    """Log (T, H, W) uint8 frames as a GIF to a TensorBoard logger (other loggers: nothing)."""
    experiment = getattr(logger, "experiment", None)
    if experiment is None or not hasattr(experiment, "add_video"):
        return
    # add_video imports moviepy, whose pygame preview would otherwise probe for a display and audio.
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    clip = torch.from_numpy(frames[:max_frames]).unsqueeze(1).unsqueeze(0)  # (1, T, 1, H, W)
    experiment.add_video(tag, clip.repeat(1, 1, 3, 1, 1), step, fps=15)
