"""benchmarks/commit_margin.py: margin 0 is greedy play, a huge margin never leaves the first action."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

from visual_iq.algo.agent import SoftQAgent
from visual_iq.train.evaluation import evaluate
from visual_iq.algo.networks import build_q_network

SPEC = importlib.util.spec_from_file_location("commit_margin", Path("benchmarks/commit_margin.py"))
commit_margin = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(commit_margin)


def test_committed_actions_keep_the_previous_action_only_within_the_margin():
    q = torch.tensor([[0.0, 1.0, 3.0], [2.0, 0.0, 2.5], [1.0, 1.0, 0.0]])
    previous = np.array([1, 0, 2])
    assert commit_margin.committed_actions(q, previous, 0.0).tolist() == [2, 2, 0]
    assert commit_margin.committed_actions(q, previous, 0.5).tolist() == [2, 0, 0]
    assert commit_margin.committed_actions(q, previous, 1.5).tolist() == [2, 0, 2]
    assert commit_margin.committed_actions(q, previous, 1e9).tolist() == [1, 0, 2]


def test_margin_zero_plays_the_greedy_games_and_a_huge_margin_only_noops(catch_settings):
    torch.manual_seed(0)
    agent = SoftQAgent(build_q_network("small", 3), alpha=0.01, gamma=0.99, settings=catch_settings)
    greedy = evaluate(agent.act, catch_settings, 5, seed=3).returns
    noop = evaluate(lambda obs: np.zeros(len(obs), np.int64), catch_settings, 5, seed=3).returns
    assert np.array_equal(commit_margin.play(agent, 0.0, 5, seed=3), greedy)
    assert np.array_equal(commit_margin.play(agent, 1e9, 5, seed=3), noop)
    assert not np.array_equal(greedy, noop)  # the two checks above tell the margins apart
