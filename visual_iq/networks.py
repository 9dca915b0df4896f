"""Convolutional soft-Q networks over stacked uint8 frames; pixels are scaled inside the net."""

from __future__ import annotations

import torch
from torch import Tensor, nn

NETWORKS = ("nature", "small")


class QNetwork(nn.Module):
    """Q(s,·) for every discrete action from a (B, stack, H, W) uint8 observation."""

    def __init__(self, features: nn.Sequential, feature_size: int, hidden: int, num_actions: int) -> None:
        super().__init__()
        self.features = features
        self.head = nn.Sequential(nn.Linear(feature_size, hidden), nn.ReLU(), nn.Linear(hidden, num_actions))

    def forward(self, observation: Tensor) -> Tensor:
        return self.head(self.features(observation.float() / 255.0))


def _conv_stack(layers: list[tuple[int, int, int]], in_channels: int) -> nn.Sequential:
    modules: list[nn.Module] = []
    for out_channels, kernel, stride in layers:
        modules += [nn.Conv2d(in_channels, out_channels, kernel, stride), nn.ReLU()]
        in_channels = out_channels
    return nn.Sequential(*modules, nn.Flatten())


def build_q_network(name: str, num_actions: int, stack_size: int = 4, screen_size: int = 84) -> QNetwork:
    """``nature``: the Nature-DQN CNN (3 conv layers, 512 hidden). ``small``: the 2013 DQN CNN
    (2 conv layers, 256 hidden), about 4x cheaper per update on a CPU."""
    if name == "nature":
        features, hidden = _conv_stack([(32, 8, 4), (64, 4, 2), (64, 3, 1)], stack_size), 512
    elif name == "small":
        features, hidden = _conv_stack([(16, 8, 4), (32, 4, 2)], stack_size), 256
    else:
        raise ValueError(f"unknown network {name!r}; choose one of {NETWORKS}")
    with torch.no_grad():
        feature_size = features(torch.zeros(1, stack_size, screen_size, screen_size)).shape[1]
    return QNetwork(features, feature_size, hidden, num_actions)
