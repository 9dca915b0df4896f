"""bf16 may speed up the convolutions, but Q, the loss and the chosen actions stay fp32-exact.

The shipped agent on 512 demo states with a large constant added to Q (online runs reach
|Q| ≈ 80): in bf16 Q itself would be rounded to steps of 0.5, tie every action and pick NOOP.
"""

import copy

import numpy as np
import pytest
import torch

from visual_iq.data.demos import episode_paths, load_episode
from visual_iq.algo.losses import iq_loss, soft_value
from visual_iq.algo.agent import load_agent
from visual_iq.algo.networks import resolve_precision


@pytest.fixture(scope="module")
def agent_and_batch():
    agent = load_agent("agents/pong_online_iq.ckpt")
    episode = load_episode(episode_paths("demos/pong")[0])
    observations = torch.from_numpy(episode.observations()[:513])
    actions = torch.from_numpy(episode.actions[:512].astype(np.int64))
    return agent.q_net, observations, actions


@torch.no_grad()
def _q_and_loss(q_net, observations, actions):
    q = q_net(observations[:-1])
    next_v = soft_value(q_net(observations[1:]), alpha=0.01)
    loss, _ = iq_loss(q, actions, next_v, torch.zeros(len(actions)), torch.ones(len(actions), dtype=torch.bool),
                      alpha=0.01, gamma=0.99)
    return q, float(loss)


@pytest.mark.parametrize("offset", [0.0, 20.0, 80.0])
def test_bf16_trunk_keeps_q_loss_and_actions_of_fp32(agent_and_batch, offset):
    q_net, observations, actions = agent_and_batch
    shifted = copy.deepcopy(q_net)
    with torch.no_grad():
        shifted.head[-1].bias += offset
    shifted.bf16_trunk = False
    q32, loss32 = _q_and_loss(shifted, observations, actions)
    shifted.bf16_trunk = True
    q16, loss16 = _q_and_loss(shifted, observations, actions)
    assert q16.dtype == torch.float32
    assert not torch.equal(q16, q32)  # the bf16 trunk is really on: Q moves a little from fp32
    top2 = q16.topk(2, dim=1).values
    assert not (top2[:, 0] == top2[:, 1]).any(), "bf16 mode ties actions"
    assert (q16.argmax(1) == q32.argmax(1)).float().mean() >= 0.99
    assert loss16 == pytest.approx(loss32, abs=1e-4)


def test_auto_precision_is_bf16_only_with_native_bf16(monkeypatch):
    import visual_iq.algo.networks as networks

    monkeypatch.setattr(networks, "cpu_has_native_bf16", lambda: False)
    assert resolve_precision("auto", "cpu") == "32"
    monkeypatch.setattr(networks, "cpu_has_native_bf16", lambda: True)
    assert resolve_precision("auto", "cpu") == "bf16"
    assert resolve_precision("auto", "cuda") == "32"
    assert resolve_precision("bf16", "cpu") == "bf16" and resolve_precision("32", "cpu") == "32"


def test_action_agreement_exposes_a_collapse_to_the_commonest_action():
    from visual_iq.algo.objectives import action_agreement

    actions = torch.tensor([0] * 8 + [2, 3])
    noop_only = torch.zeros(10, 6)
    noop_only[:, 0] = 1.0
    metrics = action_agreement(noop_only, actions)
    assert metrics["expert_action_accuracy"] == pytest.approx(0.8)
    assert metrics["expert_action_base_rate"] == pytest.approx(0.8)
    assert metrics["expert_action_balanced_accuracy"] == pytest.approx(1 / 3)
    perfect = torch.nn.functional.one_hot(actions, 6).float()
    assert action_agreement(perfect, actions)["expert_action_balanced_accuracy"] == pytest.approx(1.0)


@pytest.mark.parametrize("native_bf16", [False, True])
def test_loaded_agent_acts_in_the_precision_test_uses(monkeypatch, native_bf16):
    # the shipped agent was trained with precision auto: bf16 trunk only on a CPU with native bf16,
    # as `visual-iq test` would run it on this machine (visual-iq record and visual-iq reward load it so)
    import visual_iq.algo.networks as networks

    monkeypatch.setattr(networks, "cpu_has_native_bf16", lambda: native_bf16)
    assert load_agent("agents/pong_online_iq.ckpt").q_net.bf16_trunk is native_bf16


@pytest.mark.parametrize("flush", [True, False])
def test_fit_flushes_subnormal_floats_as_configured(train, flush):
    """Subnormal floats (Adam's moments of weights whose gradient stays ~0) slow x86 arithmetic many times over."""
    subnormal = torch.tensor([1e-40])
    try:
        train(2, flush_denormal=flush)
        assert bool(subnormal.clone().mul(1.0) == 0) == flush
    finally:
        torch.set_flush_denormal(False)
