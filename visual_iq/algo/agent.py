"""A trained soft-Q agent, without Lightning: network + temperature + env settings.

The policy is π(a|s) = softmax(Q(s,·)/α); `SoftQAgent.act` plays it greedily or samples it.
`load_agent` builds one from a visual-iq checkpoint (a training one or an exported one) with no
target network, optimizer or env; `export_agent` writes the small exported form.
"""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from visual_iq.env.envs import OBSERVATION_FIELDS, EnvSettings, check_observation_settings
from visual_iq.errors import CheckpointError, EnvSettingsError
from visual_iq.files import atomic_write
from visual_iq.algo.networks import build_q_network, resolve_precision

NETWORK_PREFIX = "q_net."
"""Checkpoint state-dict keys of the online soft-Q network."""
TARGET_PREFIX = "target_net."
"""Checkpoint state-dict keys of its target network."""


class SoftQAgent:
    """Acts with the soft-Q policy of ``q_net`` on uint8 (B, stack, H, W) observations."""

    def __init__(self, q_net: nn.Module, *, alpha: float, gamma: float, settings: EnvSettings,
                 hyper_parameters: dict[str, Any] | None = None) -> None:
        self.q_net = q_net
        self.alpha = alpha
        self.gamma = gamma
        self.settings = settings
        self.hyper_parameters = dict(hyper_parameters or {})
        """Everything the agent was trained with (method, variant, ...), for reference."""

    @torch.no_grad()
    def q_values(self, observations: np.ndarray | Tensor) -> Tensor:
        """fp32 Q(s,·) of a batch of observations, on the network's device."""
        device = next(self.q_net.parameters()).device
        return self.q_net(torch.as_tensor(observations, device=device))

    def act(self, observations: np.ndarray | Tensor, sample: bool = False) -> np.ndarray:
        """Actions for a batch of observations: greedy (argmax Q), or sampled from softmax(Q/α)."""
        return soft_q_actions(self.q_values(observations), self.alpha, sample)


def soft_q_actions(q: Tensor, alpha: float, sample: bool = False) -> np.ndarray:
    """Actions for a batch of Q values (B, actions): greedy (argmax Q), or sampled from softmax(Q/α)."""
    if sample:
        return torch.distributions.Categorical(logits=q / alpha).sample().cpu().numpy()
    return q.argmax(dim=1).cpu().numpy()


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """A visual-iq checkpoint as a dict, read with ``weights_only=True`` (no code runs from the file).

    Raises `CheckpointError` naming the file if it is missing, not a torch file, truncated, not a
    visual-iq checkpoint (no env settings, settings or soft-Q network), or one made before the settings
    were grouped (with the command that converts it).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    checkpoint: Any = None
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
        EnvSettings.from_dict(checkpoint["env_settings"])
        hyper_parameters = checkpoint["hyper_parameters"]
        hyper_parameters["network"], hyper_parameters["objective"]["alpha"], hyper_parameters["objective"]["gamma"]
        if not any(key.startswith(NETWORK_PREFIX) for key in checkpoint["state_dict"]):
            raise KeyError("no q_net weights")
    except (KeyError, TypeError, AttributeError, EnvSettingsError, RuntimeError, EOFError, OSError,
            pickle.UnpicklingError) as error:
        if has_flat_settings(checkpoint):
            raise CheckpointError(f"{path}: made before visual-iq grouped its settings; convert it once with "
                                  f"`visual-iq upgrade {path}`") from None
        raise CheckpointError(f"{path}: not a visual-iq checkpoint ({type(error).__name__}: {error})") from None
    return checkpoint


def has_flat_settings(checkpoint: Any) -> bool:
    """Whether a checkpoint holds the flat settings of visual-iq before its settings groups (`visual-iq upgrade`)."""
    hyper_parameters = checkpoint.get("hyper_parameters") if isinstance(checkpoint, dict) else None
    return isinstance(hyper_parameters, dict) and "alpha" in hyper_parameters and "objective" not in hyper_parameters


def agent_from_checkpoint(checkpoint: dict[str, Any]) -> SoftQAgent:
    """The agent stored in a checkpoint dict read by `read_checkpoint`, on CPU in eval mode, its
    convolutions in bf16 only where the checkpoint's ``precision`` says so for this CPU."""
    settings = EnvSettings.from_dict(checkpoint["env_settings"])
    hyper_parameters = {k: v for k, v in checkpoint["hyper_parameters"].items() if k != "_instantiator"}
    weights = network_weights(checkpoint["state_dict"], NETWORK_PREFIX)
    action_layer = "head.advantage.2.weight" if "head.advantage.2.weight" in weights else "head.2.weight"  # dueling or not
    num_actions = weights[action_layer].shape[0]
    q_net = build_q_network(hyper_parameters["network"], num_actions, settings.stack_size, settings.screen_size)
    q_net.load_state_dict(weights)
    # the trained precision setting, resolved for this CPU: the agent plays as `visual-iq test` plays it
    q_net.bf16_trunk = resolve_precision(hyper_parameters["speed"].get("precision", "32"), "cpu") == "bf16"
    objective = hyper_parameters["objective"]
    return SoftQAgent(q_net.eval(), alpha=objective["alpha"], gamma=objective["gamma"], settings=settings,
                      hyper_parameters=hyper_parameters)


def load_agent(path: str | Path, settings: EnvSettings | None = None) -> SoftQAgent:
    """The agent of checkpoint ``path``; with ``settings``, a checkpoint made for other observations
    is refused with a `CheckpointError` naming the file and the differing fields."""
    checkpoint = read_checkpoint(path)
    if settings is not None:
        check_checkpoint_settings(checkpoint, settings, f"checkpoint {path}")
    return agent_from_checkpoint(checkpoint)


def check_checkpoint_settings(checkpoint: dict[str, Any], wanted: EnvSettings, what: str,
                              fields: tuple[str, ...] = OBSERVATION_FIELDS) -> None:
    """Refuse (`CheckpointError` naming ``what`` and the fields) a checkpoint without env settings
    or one whose network was trained on other observations than ``wanted``."""
    if "env_settings" not in checkpoint:
        raise CheckpointError(f"{what} has no env settings: not a visual-iq checkpoint")
    try:
        check_observation_settings(EnvSettings.from_dict(checkpoint["env_settings"]), wanted, what, fields)
    except EnvSettingsError as error:
        raise CheckpointError(str(error)) from None


def export_agent(ckpt_paths: str | Path | Sequence[str | Path], out_path: str | Path, *,
                 as_trained: bool = False) -> Path:
    """Write a small checkpoint of a trained agent: the online network, hparams and env settings.

    It drops the target network, optimizer state and loop state (about 4x smaller for the Nature
    CNN), and still works with ``visual-iq test/validate --ckpt_path``, `load_agent`,
    ``visual-iq record --source agent`` and ``visual-iq reward``; it cannot resume training.
    Given several checkpoints (snapshots of one run), it writes the average of their networks:
    the policy oscillates from snapshot to snapshot, and on its plateau the average played better
    than each (research/results.md, "Averaging weights"). A checkpoint saved with Lightning's weight-averaging callback holds the
    averaged weights; ``as_trained`` takes the weights as trained instead. The write is atomic.
    """
    paths = [Path(ckpt_paths)] if isinstance(ckpt_paths, (str, Path)) else [Path(path) for path in ckpt_paths]
    if not paths:
        raise CheckpointError("no checkpoint to export")
    checkpoints = [read_checkpoint(path) for path in paths]
    networks = [_network_to_export(checkpoint, path, as_trained) for path, checkpoint in zip(paths, checkpoints)]
    first = checkpoints[0]
    agent_from_checkpoint(first)  # refuses a checkpoint whose network cannot be built
    for path, checkpoint, network in zip(paths[1:], checkpoints[1:], networks[1:]):
        _check_same_agent(path, checkpoint, network, paths[0], first, networks[0])
    exported = {
        "exported_agent": True,
        "pytorch-lightning_version": first.get("pytorch-lightning_version", ""),
        "epoch": max(checkpoint.get("epoch", 0) for checkpoint in checkpoints),
        "global_step": max(checkpoint.get("global_step", 0) for checkpoint in checkpoints),
        "state_dict": {key: torch.stack([network[key] for network in networks]).mean(dim=0)
                       if networks[0][key].is_floating_point() else networks[0][key] for key in networks[0]},
        "hparams_name": first.get("hparams_name", "kwargs"),
        "hyper_parameters": first["hyper_parameters"],
        "env_settings": first["env_settings"],
    }
    if len(paths) > 1:
        exported["averaged_from"] = [{"path": str(path), "global_step": checkpoint.get("global_step", 0)}
                                     for path, checkpoint in zip(paths, checkpoints)]
    return atomic_write(out_path, lambda file: torch.save(exported, file))


def _network_to_export(checkpoint: dict[str, Any], path: Path, as_trained: bool) -> dict[str, torch.Tensor]:
    """The online network's entries of a checkpoint's state dict (of the weights as trained, if asked)."""
    state = checkpoint["state_dict"]
    if as_trained:
        if "current_model_state" not in checkpoint:
            raise CheckpointError(f"{path}: saved without weight averaging, so its weights are the trained ones: "
                                  "export it without --as-trained")
        state = checkpoint["current_model_state"]
    return {key: value for key, value in state.items() if key.startswith(NETWORK_PREFIX)}


def _check_same_agent(path: Path, checkpoint: dict[str, Any], network: dict[str, torch.Tensor],
                      first_path: Path, first: dict[str, Any], first_network: dict[str, torch.Tensor]) -> None:
    """Refuse to average networks that are not the same agent's: other env settings, network,
    temperature or weight shapes (`CheckpointError` naming both files and what differs)."""
    ours, theirs = checkpoint["hyper_parameters"], first["hyper_parameters"]
    differences = [f"{key} {mine!r} vs {other!r}" for key, mine, other in (
        ("network", ours["network"], theirs["network"]),
        ("alpha", ours["objective"]["alpha"], theirs["objective"]["alpha"])) if mine != other]
    # as settings, not dicts: a checkpoint written before a settings field existed has its default
    settings_differ = EnvSettings.from_dict(checkpoint["env_settings"]).differences(EnvSettings.from_dict(first["env_settings"]))
    if settings_differ:
        differences.append("env settings: " + "; ".join(settings_differ))
    if not differences and ({k: v.shape for k, v in network.items()} != {k: v.shape for k, v in first_network.items()}):
        differences.append("weight shapes")
    if differences:
        raise CheckpointError(f"{path} cannot be averaged with {first_path}: "
                              f"not the same agent ({', '.join(differences)})")


def prepare_checkpoint_to_load(checkpoint: dict[str, Any], settings: EnvSettings, *, fitting: bool) -> None:
    """Check a checkpoint the training module is about to load and make an exported agent loadable:
    the env settings must match (`check_checkpoint_settings`), a fit needs the optimizer and replay
    state that only a full checkpoint holds (`CheckpointError` otherwise), and an exported agent's
    target network starts as a copy of its network (`with_target_network`)."""
    check_checkpoint_settings(checkpoint, settings, "the checkpoint")
    if fitting and "optimizer_states" not in checkpoint:
        raise CheckpointError("an exported agent or a snapshot holds only the network, not the optimizer "
                              "or replay state: it can be tested, recorded, analysed and averaged, not resumed "
                              "(--warm_start starts a new run from it)")
    if checkpoint.get("exported_agent"):
        checkpoint["state_dict"] = with_target_network(checkpoint["state_dict"])


def with_target_network(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A Lightning state dict for a training module: an exported agent stores only ``q_net``, and
    its target network starts as a copy of it."""
    if any(key.startswith(TARGET_PREFIX) for key in state_dict):
        return state_dict
    online = network_weights(state_dict, NETWORK_PREFIX)
    return {**state_dict, **{TARGET_PREFIX + key: value for key, value in online.items()}}


def network_weights(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """One network's weights (``prefix``: `NETWORK_PREFIX` or `TARGET_PREFIX`) of a Lightning state
    dict, keyed as the network's own state dict."""
    return {key[len(prefix):]: value for key, value in state_dict.items() if key.startswith(prefix)}
