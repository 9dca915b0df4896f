"""Rank correlation used to judge recovered rewards; action agreement with held-out demos; reading them."""

import dataclasses

import numpy as np
import pytest
import torch

from visual_iq.algo.agent import SoftQAgent
from visual_iq.data.demos import episode_paths, load_episodes
from visual_iq.errors import EnvSettingsError
from visual_iq.analysis.rewards import demo_action_agreement, episodes_for_agent, pearson, spearman


def test_spearman_uses_average_ranks_for_ties():
    x = np.array([0.0, 0.0, 1.0, 2.0])
    y = np.array([10.0, 20.0, 30.0, 40.0])
    # ranks of x: 0.5, 0.5, 2, 3 ; ranks of y: 0, 1, 2, 3
    assert spearman(x, y) == pytest.approx(pearson(np.array([0.5, 0.5, 2, 3]), np.arange(4)))
    assert spearman(y, y ** 3) == pytest.approx(1.0)
    assert np.isnan(spearman(np.zeros(4), y))


class ConstantPreference(torch.nn.Module):
    """A Q-network that prefers one action in every state."""

    def __init__(self, num_actions: int, preferred: int) -> None:
        super().__init__()
        self.q = torch.nn.Parameter(torch.zeros(num_actions))
        with torch.no_grad():
            self.q[preferred] = 1.0

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        return self.q.expand(len(observations), -1)


def test_demo_action_agreement_of_a_constant_policy_is_its_action_share():
    episodes = load_episodes("tests/data/catch")
    demonstrated = np.concatenate([episode.actions for episode in episodes])
    counts = np.bincount(demonstrated, minlength=3)
    commonest = int(counts.argmax())
    agent = SoftQAgent(ConstantPreference(3, commonest), alpha=0.01, gamma=0.99, settings=episodes[0].settings)
    result = demo_action_agreement(agent, episodes)
    assert result["expert_action_accuracy"] == pytest.approx(counts[commonest] / counts.sum())
    assert result["expert_action_base_rate"] == pytest.approx(result["expert_action_accuracy"])
    assert result["expert_action_balanced_accuracy"] == pytest.approx(1 / np.count_nonzero(counts))
    rarest = int(np.flatnonzero(counts)[counts[counts > 0].argmin()])
    rare = demo_action_agreement(SoftQAgent(ConstantPreference(3, rarest), alpha=0.01, gamma=0.99,
                                       settings=episodes[0].settings), episodes)
    assert rare["expert_action_accuracy"] == pytest.approx(counts[rarest] / counts.sum()) and rare["expert_action_accuracy"] < result["expert_action_accuracy"]


def test_episodes_for_agent_slices_the_directory_and_refuses_other_frames():
    episodes = load_episodes("tests/data/catch")
    settings = episodes[0].settings
    agent = SoftQAgent(ConstantPreference(3, 0), alpha=0.01, gamma=0.99, settings=settings)
    sliced = list(episodes_for_agent(agent, "tests/data/catch", 1, 3))
    assert [e.seed for e in sliced] == [e.seed for e in episodes[1:3]]
    assert all(np.array_equal(a.frames, b.frames) for a, b in zip(sliced, episodes[1:3]))
    other_frames = SoftQAgent(ConstantPreference(3, 0), alpha=0.01, gamma=0.99,
                              settings=dataclasses.replace(settings, frame_skip=settings.frame_skip + 1))
    with pytest.raises(EnvSettingsError, match=str(episode_paths("tests/data/catch")[0]).replace(".", r"\.")):
        next(episodes_for_agent(other_frames, "tests/data/catch"))
    other_stack = SoftQAgent(ConstantPreference(3, 0), alpha=0.01, gamma=0.99,
                             settings=dataclasses.replace(settings, stack_size=settings.stack_size + 1))
    assert len(list(episodes_for_agent(other_stack, "tests/data/catch"))) == len(episodes)  # frames alone must match
