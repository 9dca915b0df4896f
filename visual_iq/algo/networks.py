"""Convolutional soft-Q networks over stacked uint8 frames; pixels are scaled inside the net.

Precision: the soft-Q policy lives in small action gaps (~0.07 with α = 0.01) on top of values
that grow to |Q| ≈ 100 online, so Q itself must be fp32: bf16 keeps 8 significant bits and
would round Q to steps of 0.5 there, tying every action. ``bf16_trunk`` therefore runs only the
convolutions in bf16 autocast; the head, and so Q, soft values, losses and action choice,
are always fp32. `resolve_precision` picks bf16 only where the hardware does it natively.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

import torch
from torch import Tensor, nn

from visual_iq.errors import ConfigError

NETWORKS = ("nature", "small", "nature_dueling", "small_dueling")
Precision = Literal["auto", "32", "bf16"]


class QNetwork(nn.Module):
    """Q(s,·) for every discrete action from a (B, stack, H, W) uint8 observation, in fp32."""

    def __init__(self, features: nn.Sequential, feature_size: int, hidden: int, num_actions: int,
                 dueling: bool = False) -> None:
        super().__init__()
        self.features = features
        self.num_actions = num_actions
        self.head: nn.Module = (DuelingHead(feature_size, hidden, num_actions) if dueling else
                                nn.Sequential(nn.Linear(feature_size, hidden), nn.ReLU(), nn.Linear(hidden, num_actions)))
        self.bf16_trunk = False
        """Run the convolutions in bf16 autocast (the head always runs in fp32)."""

    def forward(self, observation: Tensor) -> Tensor:
        # One fp32 copy, scaled in place (one buffer less per batch than `/`); a copy also for a float
        # input, which the gradient penalty differentiates with respect to.
        pixels = observation.to(torch.float32, copy=True).div_(255.0)
        device = pixels.device.type
        with torch.autocast(device, dtype=torch.bfloat16, enabled=self.bf16_trunk):
            features = self.features(pixels)
        with torch.autocast(device, enabled=False):
            return self.head(features.float())


class DuelingHead(nn.Module):
    """Q(s,a) = V(s) + A(s,a) − mean_a A(s,a) from two streams (Wang et al. 2016, "Dueling Network
    Architectures"). The soft-Q policy reads only the action gaps, i.e. A; IQ-Learn's value term on
    the agent's own states moves the level of Q by far more than those gaps, and here that level
    has a stream of its own instead of sharing the last layer with the gaps."""

    def __init__(self, feature_size: int, hidden: int, num_actions: int) -> None:
        super().__init__()
        self.value = nn.Sequential(nn.Linear(feature_size, hidden), nn.ReLU(), nn.Linear(hidden, 1))
        self.advantage = nn.Sequential(nn.Linear(feature_size, hidden), nn.ReLU(), nn.Linear(hidden, num_actions))

    def forward(self, features: Tensor) -> Tensor:
        advantage = self.advantage(features)
        return self.value(features) + advantage - advantage.mean(dim=1, keepdim=True)


def _conv_stack(layers: list[tuple[int, int, int]], in_channels: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    for out_channels, kernel, stride in layers:
        modules += [nn.Conv2d(in_channels, out_channels, kernel, stride), nn.ReLU()]
        in_channels = out_channels
    return nn.Sequential(*modules, nn.Flatten())


def build_q_network(name: str, num_actions: int, stack_size: int = 4, screen_size: int = 84) -> QNetwork:
    """``nature``: the Nature-DQN CNN (3 conv layers, 512 hidden). ``small``: the 2013 DQN CNN
    (2 conv layers, 256 hidden), about 4x cheaper per update on a CPU. A ``_dueling`` suffix gives
    either a `DuelingHead` (two hidden layers of that size, one per stream)."""
    if name not in NETWORKS:
        raise ConfigError(f"unknown network {name!r}; choose one of {', '.join(NETWORKS)}")
    trunk, _, suffix = name.partition("_")
    if trunk == "nature":
        features, hidden = _conv_stack([(32, 8, 4), (64, 4, 2), (64, 3, 1)], stack_size), 512
    else:
        features, hidden = _conv_stack([(16, 8, 4), (32, 4, 2)], stack_size), 256
    with torch.no_grad():
        feature_size = features(torch.zeros(1, stack_size, screen_size, screen_size)).shape[1]
    return QNetwork(features, feature_size, hidden, num_actions, dueling=suffix == "dueling")


@lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX512-BF16 or AMX); elsewhere bf16 is emulated.

    Measured on an AVX2-only AMD EPYC: bf16 autocast ~10x slower than fp32 for the Nature CNN.
    """
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def resolve_precision(precision: Precision, device: torch.device | str) -> Literal["32", "bf16"]:
    """The precision to run: ``auto`` is bf16 only on a CPU with native bf16, else fp32.

    On CUDA ``auto`` is fp32: at these batch sizes the update is launch-bound and bf16 measured
    no faster (H200, issue 10), so fp32 costs nothing there.
    """
    if precision != "auto":
        return precision
    return "bf16" if torch.device(device).type == "cpu" and cpu_has_native_bf16() else "32"


def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target ← (1 − τ)·target + τ·online, parameter by parameter (τ = 1: hard copy)."""
    with torch.no_grad():  # one multi-tensor kernel for all parameters, not one launch each
        torch._foreach_lerp_(list(target.parameters()), list(online.parameters()), tau)
