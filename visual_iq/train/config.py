"""The training settings as typed groups, one home per value: what `IQLearn` is built from.

LightningCLI reads each group as a nested section of the ``model:`` config (``model.data.batch_size``,
``--model.objective.alpha 0.001``); the env's group is `EnvSettings` itself. Every group checks its
own values on creation and names the bad ones. Checkpoints store the groups as plain dicts;
`nest_flat_settings` turns the flat settings of checkpoints made before the groups into them.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any, Literal

import torch

from visual_iq.algo.agent import has_flat_settings
from visual_iq.algo.losses import Chi2Rows, TDLoss, Variant
from visual_iq.algo.networks import Precision
from visual_iq.algo.objectives import Method, NextValue
from visual_iq.env.envs import EnvSettings
from visual_iq.errors import ConfigError
from visual_iq.files import atomic_write

Network = Literal["nature", "small", "nature_dueling", "small_dueling"]


def _refuse(group: str, rules: dict[str, bool], values: Any, why: str) -> None:
    bad = [f"{group}.{name}={getattr(values, name)!r}" for name, valid in rules.items() if not valid]
    if bad:
        raise ConfigError(f"invalid setting(s): {', '.join(bad)} ({why})")


@dataclass(frozen=True)
class Data:
    """The demonstrations and how batches are drawn from them."""

    demos: str | list[str] | None = "demos/pong"
    """Directory of demonstration episodes, or a list of them (read in that order); null for ``method: sql``,
    which learns from the game's reward."""
    num_demos: int | None = None
    """Use only the first N demo episodes (null: all; more than there are is an error)."""
    demo_cache: str | None = None
    """Directory to decode the demo frames into once and memory-map (runs side by side share them); null: none."""
    batch_size: int = 32
    """Transitions per source per update (twice that online, if the objective reads policy rows)."""
    augment_shift: int = 0
    """Random-shift augmentation of sampled observations by up to this many pixels (DrQ; 0: off).
    Acting and evaluation always see unshifted frames."""

    def __post_init__(self) -> None:
        _refuse("data", {"num_demos": self.num_demos is None or self.num_demos >= 1, "batch_size": self.batch_size >= 1,
                         "augment_shift": self.augment_shift >= 0}, self, "counts >= 1, augment_shift >= 0")


@dataclass(frozen=True)
class Objective:
    """What is learned: IQ-Learn, or a baseline on the same network and data."""

    method: Method = "iq"
    """``iq`` (IQ-Learn), ``bc`` (behavioural cloning of softmax(Q/α)), ``sqil`` (soft Q-learning,
    reward 1 expert / 0 policy; online only) or ``sql`` (soft Q-learning on the game's reward, no demos:
    reinforcement learning, to train experts; online only)."""
    variant: Variant = "value_expert"
    """Value term of the IQ loss: ``value_expert`` (expert states), ``value`` (expert and policy), ``v0`` (episode starts)."""
    alpha: float = 0.01
    """Entropy temperature of the soft-Q policy (V = α·logsumexp(Q/α))."""
    gamma: float = 0.99
    """Discount."""
    chi2_alpha: float | None = 0.5
    """χ² regulariser weight 1/(4·chi2_alpha); null disables it."""
    chi2_rows: Chi2Rows = "auto"
    """Rows the χ² term averages over: ``expert``, ``all`` (expert and policy rows, the official
    ``method.regularize``), ``auto`` (``all`` for the ``value`` variant, else ``expert``)."""
    grad_penalty: float = 0.0
    """Weight of a gradient penalty on V between expert and policy states (online IQ)."""
    next_value: NextValue = "target"
    """V(s') from the ``target`` network (no gradient) or the ``online`` one (with gradient, as official)."""
    n_step: int = 1
    """``sql``: learn from n-step returns Σ γ^j r_j + γ^n V(s_n) (fewer steps where the episode ends)."""
    double_q: bool = False
    """``sql``: V(s') under the online network's policy with the target network's Q (double DQN as α → 0)."""
    td_loss: TDLoss = "huber"
    """``sql``: ``huber`` (DQN's: square within ±1, linear beyond) or ``mse``."""

    def __post_init__(self) -> None:
        _refuse("objective", {"alpha": self.alpha > 0, "gamma": 0 <= self.gamma < 1,
                              "chi2_alpha": self.chi2_alpha is None or self.chi2_alpha > 0,
                              "grad_penalty": self.grad_penalty >= 0, "n_step": self.n_step >= 1}, self,
                "alpha, chi2_alpha > 0; 0 <= gamma < 1; grad_penalty >= 0; n_step >= 1")


@dataclass(frozen=True)
class Optim:
    """The optimiser, its learning rate over the run, and the target network's updates."""

    lr: float = 1e-4
    """Adam learning rate."""
    lr_drop_at: int | None = None
    """Train at ``lr_drop_to`` from this update on (`visual_iq.train.schedule`); null: never."""
    lr_drop_to: float | None = None
    """The learning rate after ``lr_drop_at``."""
    target_tau: float = 0.005
    """Soft target-network update rate per update (1.0: a hard copy)."""
    target_update_interval: int = 1
    """Updates between target-network updates."""

    def __post_init__(self) -> None:
        _refuse("optim", {"lr": self.lr > 0, "target_tau": 0 < self.target_tau <= 1,
                          "target_update_interval": self.target_update_interval >= 1,
                          "lr_drop_at": self.lr_drop_at is None or (self.lr_drop_at >= 0 and self.lr_drop_to is not None),
                          "lr_drop_to": self.lr_drop_to is None or (self.lr_drop_to > 0 and self.lr_drop_at is not None)},
                self, "lr, lr_drop_to > 0; 0 < target_tau <= 1; lr_drop_at and lr_drop_to set together")


@dataclass(frozen=True)
class Online:
    """Acting in the env while learning (online IQ-Learn, SQIL); unused offline."""

    enabled: bool = False
    """Also act in the env and learn from policy samples (half of each batch, if the objective reads them)."""
    num_envs: int = 4
    """Vectorised envs that act."""
    env_steps_per_update: float = 1.0
    """Steps of every env per update; below 1, one step every 1/x updates (0.25: every 4th update)."""
    buffer_capacity: int = 25_000
    """Policy replay slots per env."""
    learning_starts: int = 1_000
    """Policy transitions collected before the first update."""
    warmup: Literal["policy", "uniform"] = "policy"
    """Who acts for those: ``policy`` (the untrained soft-Q policy) or ``uniform`` (random, as official)."""
    explore: Literal["sample", "greedy"] = "sample"
    """How the soft-Q policy acts while collecting: ``sample`` softmax(Q/α), or ``greedy`` (argmax Q, DQN's
    behaviour with ε on top; where Q's gaps are below α, sampling is far noisier than the greedy policy)."""
    epsilon_start: float = 0.0
    """Probability of a uniformly random action instead of the soft-Q policy's at the first env step (ε-greedy)."""
    epsilon_end: float = 0.0
    """That probability from ``epsilon_steps`` env steps (of all envs together) on; it falls linearly in between."""
    epsilon_steps: int = 0
    """Env steps over which ε falls from ``epsilon_start`` to ``epsilon_end``."""

    def __post_init__(self) -> None:
        _refuse("online", {"num_envs": self.num_envs >= 1, "env_steps_per_update": self.env_steps_per_update > 0,
                           "buffer_capacity": self.buffer_capacity >= 2, "learning_starts": self.learning_starts >= 0,
                           "epsilon_start": 0 <= self.epsilon_start <= 1, "epsilon_end": 0 <= self.epsilon_end <= 1,
                           "epsilon_steps": self.epsilon_steps >= 0},
                self, "num_envs >= 1, env_steps_per_update > 0, buffer_capacity >= 2, learning_starts >= 0, "
                      "epsilons in [0, 1], epsilon_steps >= 0")


@dataclass(frozen=True)
class Evaluation:
    """Evaluation games and the checkpoints kept."""

    episodes: int = 8
    """Games per validation or test run."""
    video: bool = True
    """Log a GIF of one evaluation game to TensorBoard."""
    reward_correlation: bool = True
    """Log the implicit reward's correlation with the game's along that game."""
    snapshot_every: int | None = None
    """Also keep a weights-only checkpoint every N updates (``snap-<step>.ckpt``), to average with ``visual-iq export``."""

    def __post_init__(self) -> None:
        _refuse("evaluation", {"episodes": self.episodes >= 1,
                               "snapshot_every": self.snapshot_every is None or self.snapshot_every >= 1},
                self, "counts >= 1")


@dataclass(frozen=True)
class Speed:
    """How fast the same updates run; none of these changes what is learned (bf16 within its rounding,
    ``flush_denormal`` below 1.2e-38)."""

    precision: Precision = "auto"
    """``auto`` (bf16 conv trunk only on a CPU with native bf16), ``32``, or ``bf16`` (bf16 autocast of the
    convolutions only; Q values, losses and action choice are always fp32)."""
    device_replay: bool | None = None
    """Sample on the training device from a copy of the replay there (null: on a GPU only)."""
    capture: bool | None = None
    """Replay the loss's forward and backward from CUDA graphs (`visual_iq.train.gpu.capture`); null:
    wherever possible (one CUDA process, fp32, no gradient penalty)."""
    whole_update: bool = False
    """Sample, learn and step Adam inside the training step, on a GPU replayed as one CUDA graph
    (`visual_iq.train.gpu.whole_update`; one process)."""
    updates_per_step: int = 1
    """Updates per Lightning training step (``whole_update``; what Lightning counts in steps, e.g.
    ``val_check_interval``, must be a multiple; weight averaging acts once per step)."""
    flush_denormal: bool = True
    """Treat subnormal floats (below 1.2e-38) as zero on the CPU: x86 arithmetic on them is many times slower, and
    Adam's moments of weights whose gradient stays near 0 sink there (a third of them after 33k updates of the
    small CNN: 12.2 ms per Adam step instead of 1.8). Changes nothing above that size."""

    def __post_init__(self) -> None:
        _refuse("speed", {"updates_per_step": self.updates_per_step == 1 or
                          (self.updates_per_step > 1 and self.whole_update)}, self,
                "updates_per_step above 1 needs whole_update")


def check_demos_for(objective: Objective, data: Data) -> None:
    """Refuse demos for an objective that learns from the game's reward, and no demos for one that imitates."""
    if objective.method == "sql" and data.demos is not None:
        raise ConfigError(f"objective.method=sql learns from the game's reward alone: set data.demos: null "
                          f"(it is {data.demos!r})")
    if objective.method != "sql" and data.demos is None:
        raise ConfigError(f"objective.method={objective.method} imitates demonstrations: set data.demos")


GROUPS: dict[str, type] = {"env": EnvSettings, "data": Data, "objective": Objective, "optim": Optim,
                           "online": Online, "evaluation": Evaluation, "speed": Speed}
"""The model's settings groups by their name in the config (``network`` and ``seed`` stand alone)."""

RENAMED = {"online": "enabled", "eval_episodes": "episodes", "eval_video": "video",
           "eval_reward_correlation": "reward_correlation"}
"""Flat settings of old checkpoints whose name within their group differs."""


def group_of(flat_name: str) -> str | None:
    """The group that holds an old flat setting (None: ``network`` and ``seed``, which stand alone)."""
    name = RENAMED.get(flat_name, flat_name)
    for group, cls in GROUPS.items():
        if name in {field.name for field in dataclasses.fields(cls)}:
            return group
    return None


def nest_flat_settings(flat: dict[str, Any]) -> dict[str, Any]:
    """The grouped form of the flat settings that checkpoints held before the groups (unknown keys,
    e.g. Lightning's ``_instantiator``, are kept at the top)."""
    nested: dict[str, Any] = {}
    for name, value in flat.items():
        group = group_of(name)
        if group is None:
            nested[name] = value
        else:
            nested.setdefault(group, {})[RENAMED.get(name, name)] = value
    return nested


def as_group(cls: type, value: Any) -> Any:
    """``value`` as an instance of the group ``cls`` (a checkpoint stores groups as dicts)."""
    return cls(**value) if isinstance(value, dict) else value


def upgrade_checkpoint(path: str | os.PathLike) -> bool:
    """Rewrite a checkpoint made before the settings groups with its settings grouped, in place and
    atomically; everything else in it stays as it was. False if it already had them."""
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    if not has_flat_settings(checkpoint):
        return False
    checkpoint["hyper_parameters"] = nest_flat_settings(checkpoint["hyper_parameters"])
    atomic_write(path, lambda file: torch.save(checkpoint, file))
    return True
