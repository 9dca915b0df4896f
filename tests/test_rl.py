"""Reinforcement learning from the game's reward (``method: sql``) and the paper's env protocol."""

import copy
import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from conftest import CATCH_DEMOS, iq_learn

from visual_iq.algo.losses import soft_q_learning_loss, soft_value
from visual_iq.algo.objectives import SoftQLearning, make_objective
from visual_iq.data.batches import BatchSource
from visual_iq.data.buffer import FrameReplayBuffer
from visual_iq.env.envs import EnvSettings, make_vector_env
from visual_iq.errors import ConfigError, EnvSettingsError
from visual_iq.train.evaluation import evaluate
from visual_iq.train.exploration import Explorer, linear_epsilon
from visual_iq.train.rollout import VectorRollout, uniform_policy

PAPER_PROTOCOL = dict(sticky_actions=0.0, noop_max=30, terminal_on_life_loss=True, fire_on_new_life=True,
                      clip_rewards=True)


# ------------------------------------------------------------------ the env protocol
def test_a_lost_life_ends_the_training_episode_and_the_game_plays_on():
    env = make_vector_env(EnvSettings("Breakout", **PAPER_PROTOCOL), 1)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    ends, frame_before = [], 0
    for _ in range(3000):
        observations, rewards, terminated, truncated, info = env.step(rng.integers(4, size=1))
        frame = int(info["episode_frame_number"][0])
        if ends and ends[-1]["step"] == "next":  # the step after an end: it starts the next episode
            ends[-1].update(step="done", lives_after=int(info["lives"][0]), frame_after=frame,
                            reward=float(rewards[0]), older_frames=int(observations[0, :-1].max()),
                            newest=int(observations[0, -1].max()))
        if terminated[0]:
            ends.append({"step": "next", "lives": int(info["lives"][0]), "frame": frame})
        if len(ends) == 3 and ends[-1]["step"] == "done":
            break
        frame_before = frame
    assert [end["lives"] for end in ends] == [4, 3, 2]  # one episode per life, in one game
    for end in ends:
        assert end["lives_after"] == end["lives"]  # not a new game: the lives stay lost
        assert end["frame_after"] > end["frame"]  # and the game's frame count goes on
        assert end["reward"] == 0.0 and end["older_frames"] == 0 and end["newest"] > 0  # a reset observation
    assert frame_before > 0
    env.close()


def test_rewards_are_clipped_for_training_and_evaluation_scores_whole_games():
    """Space Invaders pays 5-30 points an invader: training sees their sign, evaluation the score."""
    training = EnvSettings("SpaceInvaders", **PAPER_PROTOCOL)
    rollout = VectorRollout(training, 2, seed=0)
    policy = uniform_policy(6, seed=0)
    clipped_rewards = np.concatenate([rollout.step(policy).rewards for _ in range(400)])
    rollout.close()
    raw = VectorRollout(dataclasses.replace(training, clip_rewards=False), 2, seed=0)
    policy = uniform_policy(6, seed=0)
    raw_rewards = np.concatenate([raw.step(policy).rewards for _ in range(400)])
    raw.close()
    assert set(np.unique(clipped_rewards)) <= {0.0, 1.0} and clipped_rewards.sum() > 0
    assert raw_rewards.max() > 1
    np.testing.assert_array_equal(clipped_rewards, np.sign(raw_rewards))  # the same game, its rewards signed

    played = evaluate(uniform_policy(6, seed=1), training, 1, seed=5)
    whole = evaluate(uniform_policy(6, seed=1), training.for_evaluation(), 1, seed=5)
    np.testing.assert_array_equal(played.returns, whole.returns)
    assert played.returns[0] > 5 and played.returns[0] % 5 == 0  # points, not signs
    first_life = VectorRollout(training, 1, seed=5)  # the same game as trained on: it ends at the first lost life
    policy, steps = uniform_policy(6, seed=1), 0
    while not first_life.step(policy).done[0]:
        steps += 1
    first_life.close()
    assert played.lengths[0] > steps + 1  # every life of the game


def test_for_evaluation_drops_only_the_training_signals():
    settings = EnvSettings("Breakout", **PAPER_PROTOCOL)
    assert settings.for_evaluation().differences(settings) == ["terminal_on_life_loss: False != True",
                                                               "clip_rewards: False != True"]


# ------------------------------------------------------------------ n-step transitions
def _buffer_with_episode(rewards, capacity=32):
    """One stream holding an episode of len(rewards) steps still running (frame t filled with t; the newest, 99)."""
    buffer = FrameReplayBuffer(capacity, 1, (2, 2), stack_size=2)
    for t, reward in enumerate(rewards):
        buffer.add_observations(np.full((1, 2, 2, 2), t, np.uint8), np.array([t]))
        buffer.add_outcomes(np.array([1]), np.array([reward], np.float32), np.array([False]), np.array([False]))
    buffer.add_observations(np.full((1, 2, 2, 2), 99, np.uint8), np.array([len(rewards)]))
    return buffer


def test_n_step_transitions_sum_discounted_rewards_and_stop_at_the_episode_end():
    buffer = _buffer_with_episode([1.0, 2.0, 4.0, 8.0, 16.0])
    batch = buffer.gather_n_step(np.zeros(3, np.int64), np.array([0, 2, 3]), n_step=3, gamma=0.5)
    np.testing.assert_allclose(batch.rewards.numpy(), [1 + 0.5 * 2 + 0.25 * 4, 4 + 0.5 * 8 + 0.25 * 16, 8 + 0.5 * 16])
    assert batch.steps.tolist() == [3, 3, 2]  # the last one reaches the newest observation after 2
    assert batch.next_observations[:, -1, 0, 0].tolist() == [3, 99, 99]  # 2 + 3 = 5 is the newest slot
    one_step = buffer.gather(np.zeros(3, np.int64), np.array([0, 2, 3]))
    batch_of_one = buffer.gather_n_step(np.zeros(3, np.int64), np.array([0, 2, 3]), n_step=1, gamma=0.5)
    for key in ("rewards", "next_observations", "terminated"):
        assert torch.equal(getattr(one_step, key), getattr(batch_of_one, key))

    ended = FrameReplayBuffer(16, 1, (2, 2), stack_size=2)
    for t, (reward, terminal) in enumerate([(1.0, False), (1.0, True)]):
        ended.add_observations(np.full((1, 2, 2, 2), t, np.uint8), np.array([t]))
        ended.add_outcomes(np.array([0]), np.array([reward], np.float32), np.array([terminal]), np.array([False]))
    ended.add_observations(np.full((1, 2, 2, 2), 7, np.uint8), np.array([2]))  # the terminal observation
    ended.add_observations(np.full((1, 2, 2, 2), 50, np.uint8), np.array([0]))  # the next episode's first
    ended.add_outcomes(np.array([0]), np.array([5.0], np.float32), np.array([False]), np.array([False]))
    ended.add_observations(np.full((1, 2, 2, 2), 51, np.uint8), np.array([1]))
    batch = ended.gather_n_step(np.zeros(1, np.int64), np.array([0]), n_step=5, gamma=0.5)
    assert batch.rewards.tolist() == [1.5] and batch.steps.tolist() == [2] and batch.terminated.tolist() == [True]
    assert batch.next_observations[0, -1, 0, 0] == 7  # the terminal observation, not the next episode's


def test_batches_for_reinforcement_learning_come_from_the_policy_replay_alone():
    policy = _buffer_with_episode([1.0] * 10)
    source = BatchSource(None, policy, batch_size=6, rewards=True, n_step=3, gamma=0.5)
    batch = source.sample()
    assert not batch["is_expert"].any() and len(batch["actions"]) == 6
    assert set(batch["steps"].tolist()) <= {1, 2, 3} and 3 in batch["steps"].tolist()
    np.testing.assert_allclose(batch["rewards"].numpy(), [(1 - 0.5**k) / 0.5 for k in batch["steps"].tolist()])
    on_device = BatchSource(None, policy, batch_size=6, rewards=True, n_step=3, gamma=0.5, device="cpu").sample()
    assert on_device["steps"].max() == 3 and not on_device["is_expert"].any()


def test_n_step_transitions_on_the_device_are_the_hosts():
    from visual_iq.data.device_replay import DeviceReplay

    buffer = FrameReplayBuffer(12, 2, (2, 2), stack_size=2)  # two streams, wrapped around, episodes ending
    rng = np.random.default_rng(0)
    steps, was_done = np.zeros(2, np.int64), np.zeros(2, bool)
    for _ in range(30):  # as the collector writes: after an end, the terminal observation, then a reset one
        buffer.add_observations(rng.integers(0, 255, (2, 2, 2, 2), dtype=np.uint8), steps)
        ends = (rng.random(2) < 0.2) & ~was_done
        buffer.add_outcomes(rng.integers(3, size=2), rng.normal(size=2).astype(np.float32), ends, np.zeros(2, bool),
                            acted=~was_done)
        steps = np.where(was_done, 0, steps + 1)
        was_done = ends
    mirror = DeviceReplay(buffer, "cpu")
    mirror.sync()
    streams, slots = np.nonzero(buffer.valid_mask())
    host = buffer.gather_n_step(streams, slots, 4, 0.9)
    device = mirror.gather_n_step(torch.from_numpy(streams), torch.from_numpy(slots), 4, 0.9)
    for key in ("observations", "actions", "next_observations", "terminated", "truncated", "steps"):
        assert torch.equal(getattr(host, key), getattr(device, key)), key
    torch.testing.assert_close(host.rewards, device.rewards)
    assert host.steps.min() >= 1 and host.steps.max() == 4 and (host.steps < 4).any()


# ------------------------------------------------------------------ the loss
class FixedQ(nn.Module):
    def __init__(self, values):
        super().__init__()
        self.values = torch.tensor(values)
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, observations):
        return self.values.expand(len(observations), -1) + self.weight


def test_double_q_values_the_next_state_with_the_online_policy_and_target_q():
    online, target = FixedQ([0.0, 1.0]), FixedQ([5.0, -5.0])
    next_observations = torch.zeros(2, 1)
    plain = SoftQLearning(alpha=1e-3, gamma=0.9).next_value(online, target, next_observations)
    double = SoftQLearning(alpha=1e-3, gamma=0.9, double_q=True).next_value(online, target, next_observations)
    torch.testing.assert_close(plain, torch.full((2,), 5.0))  # max of the target's Q
    torch.testing.assert_close(double, torch.full((2,), -5.0))  # the target's Q of the online argmax
    soft = SoftQLearning(alpha=1.0, gamma=0.9, double_q=True).next_value(target, target, next_observations)
    torch.testing.assert_close(soft, soft_value(target(next_observations), 1.0))  # one network: the soft value


def test_the_target_is_n_step_returns_plus_the_discounted_next_value():
    q = torch.tensor([[0.0, 0.0], [0.0, 0.0]])
    loss, metrics = soft_q_learning_loss(q, torch.tensor([0, 1]), torch.tensor([1.0, 2.0]), torch.tensor([10.0, 10.0]),
                                         torch.tensor([0.5, 0.0]), td_loss="mse")
    assert metrics["td_target"] == pytest.approx((6.0 + 2.0) / 2)
    assert loss == pytest.approx((36 + 4) / 2)
    huber, _ = soft_q_learning_loss(q, torch.tensor([0, 1]), torch.tensor([1.0, 2.0]), torch.tensor([10.0, 10.0]),
                                    torch.tensor([0.5, 0.0]), td_loss="huber")
    assert huber == pytest.approx((5.5 + 1.5) / 2)  # linear beyond 1: |e| − 0.5


def test_the_objective_reads_steps_and_terminal_flags():
    online = FixedQ([1.0, 0.0])
    batch = {"observations": torch.zeros(3, 1), "next_observations": torch.zeros(3, 1), "actions": torch.tensor([0, 0, 0]),
             "rewards": torch.tensor([1.0, 1.0, 1.0]), "steps": torch.tensor([1, 3, 3]),
             "terminated": torch.tensor([False, False, True])}
    loss, metrics, _ = SoftQLearning(alpha=1e-3, gamma=0.5, td_loss="mse")(online, copy.deepcopy(online), batch)
    assert metrics["td_target"] == pytest.approx((1 + 0.5 + 1 + 0.125 + 1) / 3, abs=1e-3)


# ------------------------------------------------------------------ exploration
def test_epsilon_falls_linearly_then_stays():
    assert [linear_epsilon(s, 1.0, 0.1, 100) for s in (0, 50, 100, 1000)] == pytest.approx([1.0, 0.55, 0.1, 0.1])


def test_the_explorer_samples_or_acts_greedily_as_configured():
    from visual_iq.train.config import Online

    asked = []
    agent = type("Agent", (), {"act": lambda self, observations, sample: asked.append(sample) or np.zeros(len(observations))})()
    for explore in ("sample", "greedy"):
        Explorer.for_online(agent, 3, Online(explore=explore), seed=0).policy(0)(np.zeros((2, 1)))
    assert asked == [True, False]


def test_the_explorer_acts_uniformly_at_epsilon_one_and_by_the_policy_at_zero():
    agent = type("Agent", (), {"act": lambda self, observations, sample: np.zeros(len(observations), np.int64)})()
    explorer = Explorer(agent, 4, (1.0, 0.0, 1000), seed=0)
    observations = np.zeros((4000, 1))
    assert set(explorer.policy(0)(observations).tolist()) == {0, 1, 2, 3}
    assert np.mean(explorer.policy(500)(observations) == 0) == pytest.approx(0.625, abs=0.03)  # ε 0.5: 0.5 + 0.5/4
    assert set(explorer.policy(1000)(observations).tolist()) == {0}


# ------------------------------------------------------------------ learning and bad input
def test_soft_q_learning_learns_catch_from_its_reward_alone(train):
    settings = dict(method="sql", demos=None, enabled=True, num_envs=4, learning_starts=200, alpha=0.01,
                    double_q=True, epsilon_start=1.0, epsilon_end=0.05, epsilon_steps=3000, target_tau=1.0,
                    target_update_interval=100)
    untrained = iq_learn(game="visual_iq/Catch-v0", network="small", **settings)
    before = evaluate(untrained.agent.act, untrained.settings, 20, seed=123).mean
    model = train(1200, **settings)
    after = evaluate(model.agent.act, model.settings, 20, seed=123).mean
    assert after >= 1.5 and after > before + 2.5, (before, after)  # random play: about -3.5 of +5


def test_reinforcement_learning_settings_that_cannot_work_are_refused():
    with pytest.raises(ConfigError, match="online.enabled"):
        make_objective("sql", online=False, alpha=0.01, gamma=0.99)
    with pytest.raises(ConfigError, match="n_step and double_q"):
        make_objective("iq", online=True, alpha=0.01, gamma=0.99, n_step=3)
    with pytest.raises(ConfigError, match="data.demos: null"):
        iq_learn(game="visual_iq/Catch-v0", method="sql", enabled=True, demos=CATCH_DEMOS)
    with pytest.raises(ConfigError, match="imitates demonstrations"):
        iq_learn(game="visual_iq/Catch-v0", method="iq", demos=None)
    with pytest.raises(ConfigError, match="n_step"):
        iq_learn(game="visual_iq/Catch-v0", method="sql", enabled=True, demos=None, n_step=0)


def test_demos_of_the_other_protocol_are_refused_naming_them(catch_settings):
    no_sticky = EnvSettings("visual_iq/Catch-v0", sticky_actions=0.0)
    with pytest.raises(EnvSettingsError, match=r"tests/data/catch.*sticky_actions: 0.25 != 0.0"):
        BatchSource.from_demos(CATCH_DEMOS, no_sticky, num_demos=2, batch_size=4)


# ------------------------------------------------------------------ demos from a trained agent
@pytest.fixture
def one_thread():
    """What `visual-iq record` sets by default (one observation at a time: 17x faster than 2 threads beside a run)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _agent_checkpoint(path, **env):
    """An untrained Pong agent's checkpoint (alpha 1: its sampled actions vary), trained in ``env``'s protocol."""
    model = iq_learn(game="Pong", network="small", method="sql", demos=None, enabled=True, alpha=1.0,
                     max_episode_frames=1200, **env)
    torch.save({"env_settings": model.settings.to_dict(), "hyper_parameters": dict(model.hparams),
                "state_dict": model.state_dict(), "exported_agent": True}, path)
    return path


@pytest.mark.parametrize("sticky", [0.0, 0.25])
def test_agent_demos_sample_the_policy_in_its_protocol_and_replay_exactly(tmp_path, sticky, one_thread):
    from visual_iq.data.demos import load_episodes
    from visual_iq.record.recorder import record_agent
    from visual_iq.record.replay import replay

    ckpt = _agent_checkpoint(tmp_path / "agent.ckpt", **{**PAPER_PROTOCOL, "sticky_actions": sticky})
    record_agent(ckpt, tmp_path / "demos", episodes=2, sample=True, seed=4, progress=lambda _m: None)
    episodes = load_episodes(tmp_path / "demos")
    for episode in episodes:
        assert episode.settings.sticky_actions == sticky  # the checkpoint's protocol
        assert not episode.settings.terminal_on_life_loss and not episode.settings.clip_rewards  # whole games, scored
        assert episode.extra["acting"] == "sample" and len(set(episode.actions.tolist())) >= 4
        assert sum(1 for _ in replay(episode)) == episode.length + 1  # every step replays from seed + actions
    record_agent(ckpt, tmp_path / "again", episodes=1, sample=True, seed=4, progress=lambda _m: None)
    assert np.array_equal(load_episodes(tmp_path / "again")[0].actions, episodes[0].actions)


def test_agent_demos_keep_only_games_at_or_above_a_return(tmp_path, one_thread):
    from visual_iq.data.demos import load_episodes
    from visual_iq.errors import DemoError
    from visual_iq.record.recorder import record_agent

    ckpt = _agent_checkpoint(tmp_path / "agent.ckpt", **PAPER_PROTOCOL)
    messages = []
    record_agent(ckpt, tmp_path / "kept", episodes=1, min_return=-30, progress=messages.append)
    assert len(load_episodes(tmp_path / "kept")) == 1 and load_episodes(tmp_path / "kept")[0].extra["min_return"] == -30
    with pytest.raises(DemoError, match="only 0 of 2 games scored at least 21"):
        record_agent(ckpt, tmp_path / "none", episodes=1, min_return=21, max_games=2, progress=messages.append)
    assert not (tmp_path / "none").exists() or not list((tmp_path / "none").iterdir())
    assert any("not kept" in message for message in messages)


def test_the_record_tool_acts_on_one_thread_and_passes_the_agent_options(monkeypatch, tmp_path):
    import visual_iq.record.recorder
    from visual_iq.tools.record import main

    calls = []
    monkeypatch.setattr(visual_iq.record.recorder, "record_agent",
                        lambda ckpt, out, **kwargs: calls.append({**kwargs, "threads": torch.get_num_threads()}))
    before = torch.get_num_threads()
    try:
        assert main(["--source", "agent", "--ckpt", "a.ckpt", "--out", str(tmp_path), "--sample", "--min-return", "21"]) == 0
    finally:
        torch.set_num_threads(before)
    assert calls[0]["threads"] == 1 and calls[0]["sample"] and calls[0]["min_return"] == 21
    assert calls[0]["sticky_actions"] is None and calls[0]["noop_max"] is None  # the checkpoint's protocol
    with pytest.raises(SystemExit):
        main(["--source", "expert", "--out", str(tmp_path), "--sample"])


def test_a_warm_start_from_the_other_protocol_is_refused_naming_the_file(tmp_path):
    from visual_iq.errors import CheckpointError
    from visual_iq.train.warm_start import WarmStart

    ckpt = _agent_checkpoint(tmp_path / "paper.ckpt", **PAPER_PROTOCOL)  # sticky 0
    sticky = iq_learn(game="Pong", network="small", method="sql", demos=None, enabled=True)  # sticky 0.25
    with pytest.raises(CheckpointError, match=r"paper.ckpt was made with different env settings: sticky_actions: 0.0 != 0.25"):
        WarmStart(ckpt).setup(None, sticky, "fit")
    same = iq_learn(game="Pong", network="small", method="sql", demos=None, enabled=True, **PAPER_PROTOCOL)
    WarmStart(ckpt).setup(None, same, "fit")  # the training signals (life loss, clipping) may differ; not sticky
    assert torch.equal(same.q_net.state_dict()["head.2.weight"], torch.load(ckpt)["state_dict"]["q_net.head.2.weight"])


def test_the_learning_curve_of_an_online_run_reads_its_env_steps(tmp_path, capsys):
    from torch.utils.tensorboard import SummaryWriter

    from visual_iq.analysis.curves import learning_curve
    from visual_iq.tools.curve import main as curve_main

    with SummaryWriter(tmp_path) as writer:
        for step, (ret, env_steps) in enumerate([(-21.0, 210_000), (-5.0, 410_000)]):
            for tag, value in (("eval/return_mean", ret), ("eval/return_std", 1.0), ("eval/updates", 25_000 * (step + 1)),
                               ("eval/env_steps", env_steps)):
                writer.add_scalar(tag, value, 25_000 * (step + 1) - 1)
    assert [row["env_steps"] for row in learning_curve(tmp_path)] == [210_000, 410_000]
    assert curve_main([str(tmp_path)]) == 0
    assert "| 50,000 | 410,000 |" in capsys.readouterr().out


def test_a_resumed_runs_collector_counts_on_from_the_env_steps_before_it(catch_settings):
    from visual_iq.train.collector import Collector, env_steps_at_update
    from visual_iq.train.config import Online

    online = Online(enabled=True, num_envs=2, learning_starts=5, env_steps_per_update=0.5)
    assert env_steps_at_update(0, online) == 6 and env_steps_at_update(10, online) == 6 + 2 * 5
    buffer = FrameReplayBuffer(50, 2, (84, 84), 4)
    collector = Collector(catch_settings, 2, buffer, env_steps_before=env_steps_at_update(10, online))
    collector.collect(uniform_policy(3), 3)
    assert collector.env_steps == 16 + 6 and collector.metrics()["rollout/env_steps"] == 22
    collector.close()
