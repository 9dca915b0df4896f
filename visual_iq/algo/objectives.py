"""The training objective, chosen once: IQ-Learn, behavioural cloning, SQIL, or soft Q-learning on the game's reward.

Each is a small configured callable ``objective(q_net, target_net, batch) -> (loss, metrics, q)``
over one batch (`visual_iq.data.batches`): it runs the networks and hands the Q values to the pure
loss in `visual_iq.algo.losses`. ``q`` (the online Q of the batch states) comes back for logging.
`soft_q_diagnostics` are the figures every method logs about its Q values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

import torch
from torch import Tensor, nn

from visual_iq.errors import ConfigError, TrainingDiverged
from visual_iq.algo.losses import (CHI2_ROWS, TD_LOSSES, VARIANTS, Chi2Rows, TDLoss, Variant, bc_loss, chi2_on_all_rows,
                                   iq_loss, soft_q_learning_loss, soft_value, sqil_loss)

Method = Literal["iq", "bc", "sqil", "sql"]
METHODS: tuple[str, ...] = ("iq", "bc", "sqil", "sql")
NextValue = Literal["target", "online"]
"""Where V(s') comes from: the target network (no gradient), or the online network with gradient
(the official IQ-Learn Atari recipe, ``use_target: False``)."""
Batch = dict[str, Tensor]


class Objective(Protocol):
    needs_initial_states: bool
    """Whether batches must carry ``initial_observations`` (episode starts)."""
    reads_policy_rows: bool
    """Whether the loss depends on the policy rows of a batch at all; if not, online training
    leaves them out of its batches (the same gradient for half the network passes)."""
    reads_demos: bool
    """Whether it learns from demonstrations (all but `SoftQLearning`, which learns from the game's reward)."""
    n_step: int
    """Env steps each sampled transition spans (batches then carry ``rewards`` and ``steps``)."""

    def __call__(self, q_net: nn.Module, target_net: nn.Module, batch: Batch,
                 with_metrics: bool = True) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """(loss, metrics, q); ``with_metrics=False``: no metrics and no read back to the host."""
        ...


def next_soft_value(q_net: nn.Module, target_net: nn.Module, next_observations: Tensor, alpha: float,
                    source: NextValue) -> Tensor:
    """V(s') = α·logsumexp(Q(s',·)/α) from the target network without gradient, or from the
    online network with gradient."""
    if source == "online":
        return soft_value(q_net(next_observations), alpha)
    with torch.no_grad():
        return soft_value(target_net(next_observations), alpha)


@dataclass(frozen=True)
class IQObjective:
    """Inverse soft-Q learning: `iq_loss` with V(s') from the target or the online network.

    ``grad_penalty`` > 0 adds w·(‖∇_s V(s)‖ − 1)² at random interpolations of expert and policy
    states (online only).
    """

    alpha: float
    gamma: float
    variant: Variant = "value_expert"
    chi2_alpha: float | None = 0.5
    grad_penalty: float = 0.0
    next_value: NextValue = "target"
    chi2_rows: Chi2Rows = "auto"
    reads_demos = True
    n_step = 1

    @property
    def needs_initial_states(self) -> bool:
        return self.variant == "v0"

    @property
    def reads_policy_rows(self) -> bool:
        """Only ``value``, χ² over all rows and the gradient penalty read policy rows: the official
        Atari recipe (``value_expert``, χ² on expert rows) does not."""
        chi2_on_all = self.chi2_alpha is not None and chi2_on_all_rows(self.variant, self.chi2_rows)
        return self.variant == "value" or chi2_on_all or self.grad_penalty > 0

    def __call__(self, q_net: nn.Module, target_net: nn.Module, batch: Batch,
                 with_metrics: bool = True) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        observations, is_expert = batch["observations"], batch["is_expert"]
        q = q_net(observations)
        next_v = next_soft_value(q_net, target_net, batch["next_observations"], self.alpha, self.next_value)
        initial_v = soft_value(q_net(batch["initial_observations"]), self.alpha) if self.needs_initial_states else None
        loss, metrics = iq_loss(q, batch["actions"], next_v, batch["terminated"], is_expert, alpha=self.alpha,
                                gamma=self.gamma, variant=self.variant, chi2_alpha=self.chi2_alpha,
                                chi2_rows=self.chi2_rows, initial_v=initial_v, with_metrics=with_metrics)
        if self.grad_penalty > 0:
            penalty = gradient_penalty(q_net, observations[is_expert], observations[~is_expert], self.alpha)
            loss = loss + self.grad_penalty * penalty
            if with_metrics:
                metrics["grad_penalty"] = penalty.detach()
        return loss, metrics, q


@dataclass(frozen=True)
class BCObjective:
    """Behavioural cloning of softmax(Q/α) on the expert rows."""

    alpha: float
    needs_initial_states = False
    reads_policy_rows = False
    reads_demos = True
    n_step = 1

    def __call__(self, q_net: nn.Module, target_net: nn.Module, batch: Batch,
                 with_metrics: bool = True) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        q = q_net(batch["observations"])
        loss, metrics = bc_loss(q, batch["actions"], batch["is_expert"], alpha=self.alpha, with_metrics=with_metrics)
        return loss, metrics, q


@dataclass(frozen=True)
class SQILObjective:
    """Soft Q-learning with reward 1 on expert and 0 on policy rows; V(s') from the target or online network."""

    alpha: float
    gamma: float
    next_value: NextValue = "target"
    needs_initial_states = False
    reads_policy_rows = True
    reads_demos = True
    n_step = 1

    def __call__(self, q_net: nn.Module, target_net: nn.Module, batch: Batch,
                 with_metrics: bool = True) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        q = q_net(batch["observations"])
        next_v = next_soft_value(q_net, target_net, batch["next_observations"], self.alpha, self.next_value)
        loss, metrics = sqil_loss(q, batch["actions"], next_v, batch["terminated"], batch["is_expert"], gamma=self.gamma,
                                  with_metrics=with_metrics)
        return loss, metrics, q


@dataclass(frozen=True)
class SoftQLearning:
    """Soft Q-learning on the game's reward (reinforcement learning, for training experts), over
    ``n_step`` steps, with ``td_loss`` and, if ``double_q``, V(s') of the online network's policy:
    V(s') = Σ_a π(a|s')(Q_target(s',a) − α log π(a|s')) with π = softmax(Q_online(s',·)/α), which
    as α → 0 is double DQN's Q_target(s', argmax Q_online(s',·)). Else V(s') = α·logsumexp(Q_target(s',·)/α)."""

    alpha: float
    gamma: float
    n_step: int = 1
    double_q: bool = False
    td_loss: TDLoss = "huber"
    needs_initial_states = False
    reads_policy_rows = True
    reads_demos = False

    def next_value(self, q_net: nn.Module, target_net: nn.Module, next_observations: Tensor) -> Tensor:
        """V(s'), without gradient."""
        with torch.no_grad():
            target_q = target_net(next_observations)
            if not self.double_q:
                return soft_value(target_q, self.alpha)
            log_pi = torch.log_softmax(q_net(next_observations) / self.alpha, dim=1)
            return (log_pi.exp() * (target_q - self.alpha * log_pi)).sum(dim=1)

    def __call__(self, q_net: nn.Module, target_net: nn.Module, batch: Batch,
                 with_metrics: bool = True) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        q = q_net(batch["observations"])
        next_v = self.next_value(q_net, target_net, batch["next_observations"])
        bootstrap = self.gamma ** batch["steps"].float() * (1.0 - batch["terminated"].float())
        loss, metrics = soft_q_learning_loss(q, batch["actions"], batch["rewards"], next_v, bootstrap,
                                             td_loss=self.td_loss, with_metrics=with_metrics)
        return loss, metrics, q


def make_objective(method: str, *, online: bool, alpha: float, gamma: float, variant: str = "value_expert",
                   chi2_alpha: float | None = 0.5, grad_penalty: float = 0.0,
                   next_value: str = "target", chi2_rows: str = "auto", n_step: int = 1, double_q: bool = False,
                   td_loss: str = "huber") -> Objective:
    """The configured objective; settings that cannot work together raise `ConfigError`."""
    if method not in METHODS:
        raise ConfigError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    if next_value not in ("target", "online"):
        raise ConfigError(f"unknown next_value {next_value!r}; choose target or online")
    if variant not in VARIANTS:
        raise ConfigError(f"unknown IQ variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if chi2_rows not in CHI2_ROWS:
        raise ConfigError(f"unknown chi2_rows {chi2_rows!r}; choose one of {', '.join(CHI2_ROWS)}")
    if grad_penalty > 0 and (method != "iq" or not online):
        raise ConfigError("grad_penalty is a term of online IQ-Learn: it needs method: iq and online: true")
    if td_loss not in TD_LOSSES:
        raise ConfigError(f"unknown td_loss {td_loss!r}; choose one of {', '.join(TD_LOSSES)}")
    if method != "sql" and (n_step != 1 or double_q):
        raise ConfigError(f"n_step and double_q are options of method: sql, not {method} "
                          f"(got n_step={n_step}, double_q={double_q})")
    if method == "sql":
        if not online:
            raise ConfigError("method sql learns from the game's reward by playing it: set online.enabled: true")
        return SoftQLearning(alpha, gamma, n_step, double_q, td_loss)  # type: ignore[arg-type]
    if method == "sqil":
        if not online:
            raise ConfigError("sqil learns from policy samples (reward 0) as well as expert ones: set online: true")
        return SQILObjective(alpha, gamma, next_value)  # type: ignore[arg-type]
    if method == "bc":
        return BCObjective(alpha)
    return IQObjective(alpha, gamma, variant, chi2_alpha, grad_penalty, next_value, chi2_rows)  # type: ignore[arg-type]


def gradient_penalty(q_net: nn.Module, expert: Tensor, policy: Tensor, alpha: float) -> Tensor:
    """(‖∇_s V(s)‖ − 1)² at random interpolations of expert and policy states (also computed
    inside ``torch.no_grad()``, as the logging pass does: the gradient w.r.t. s is the term)."""
    count = min(len(expert), len(policy))
    mix = torch.rand(count, 1, 1, 1, device=expert.device)
    differentiable = torch.is_grad_enabled()  # the penalty itself gets a gradient only if asked
    with torch.enable_grad():
        states = (mix * expert[:count].float() + (1 - mix) * policy[:count].float()).requires_grad_(True)
        v = soft_value(q_net(states), alpha)
        (gradient,) = torch.autograd.grad(v.sum(), states, create_graph=differentiable)
    return ((gradient.flatten(1).norm(dim=1) - 1) ** 2).mean()


def action_agreement(q: Tensor, actions: Tensor) -> dict[str, Tensor]:
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


@torch.no_grad()
def soft_q_diagnostics(q: Tensor, actions: Tensor, is_expert: Tensor, alpha: float) -> dict[str, Tensor]:
    """Max Q, soft value V and policy entropy on expert (and policy) rows, and `action_agreement`."""
    q = q.detach()
    v = soft_value(q, alpha)
    log_pi = torch.log_softmax(q / alpha, dim=1)
    entropy = -(log_pi.exp() * log_pi).sum(dim=1)
    metrics = {}
    for name, rows in (("expert", is_expert), ("policy", ~is_expert)):
        if rows.any():
            metrics[f"q_{name}"] = q[rows].max(dim=1).values.mean()
            metrics[f"v_{name}"] = v[rows].mean()
            metrics[f"entropy_{name}"] = entropy[rows].mean()
    if not is_expert.any():  # reinforcement learning: no demonstrator to agree with
        return metrics
    return {**metrics, **action_agreement(q[is_expert], actions[is_expert])}


def training_metrics(objective: Objective, q_net: nn.Module, target_net: nn.Module, batch: Batch, loss: Tensor, *,
                     method: str, update: int, alpha: float) -> dict[str, Tensor]:
    """``train/`` metrics from a no-gradient pass over ``batch``: the loss, its terms and
    `soft_q_diagnostics`, after `raise_if_diverged` (reads back to the host: at logging steps only)."""
    with torch.no_grad():
        _, terms, q = objective(q_net, target_net, batch)
    raise_if_diverged(loss, terms, method, update)
    diagnostics = soft_q_diagnostics(q, batch["actions"], batch["is_expert"], alpha)
    return {"train/loss": loss.detach(), **{f"train/{k}": v for k, v in {**terms, **diagnostics}.items()}}


def raise_if_diverged(loss: Tensor, terms: dict[str, Tensor], method: str, update: int) -> None:
    """`TrainingDiverged` naming the update and the loss terms if the loss is not finite (reads
    the loss back to the host: call it at logging steps, not every update)."""
    if not torch.isfinite(loss):
        raise TrainingDiverged(
            f"the {method.upper()} loss became {loss.item()} by update {update} (terms: "
            + ", ".join(f"{k}={v.item():.4g}" for k, v in terms.items())
            + "); lower lr or alpha, or enable the chi2 regulariser"
        )
