import numpy as np
import pytest
import torch

from conftest import CATCH_DEMOS

from visual_iq.data.batches import BatchSource
from visual_iq.data.buffer import FrameReplayBuffer
from visual_iq.train.collector import Collector
from visual_iq.data.demos import demo_paths, iter_episodes, load_episodes, stored_frames
from visual_iq.env.envs import make_env
from visual_iq.record.recorder import record_episodes


def test_expert_buffer_stacks_match_the_env(tmp_path, catch_settings):
    env = make_env(catch_settings)
    rng = np.random.default_rng(0)
    record_episodes(env, lambda _o: int(rng.integers(3)), tmp_path, episodes=3, source="agent",
                    progress=lambda _m: None)
    episodes = load_episodes(tmp_path)
    buffer = FrameReplayBuffer.from_episodes(episodes)
    assert len(buffer) == sum(e.length for e in episodes)
    # every transition of the buffer equals the episode's own observations
    observations = np.concatenate([e.observations() for e in episodes])
    offsets = np.cumsum([0] + [e.length + 1 for e in episodes])
    for episode_index, episode in enumerate(episodes):
        for t in range(episode.length):
            slot = offsets[episode_index] + t
            stack = buffer._stack(np.array([0]), np.array([slot]))[0]
            assert np.array_equal(stack, observations[slot])


def test_buffer_filled_one_episode_at_a_time_equals_the_list_built_one():
    listed = FrameReplayBuffer.from_episodes(load_episodes(CATCH_DEMOS, limit=5))
    total = sum(stored_frames(path) for path in demo_paths(CATCH_DEMOS, 5))
    streamed = FrameReplayBuffer.from_episodes(iter_episodes(CATCH_DEMOS, limit=5), total_frames=total)
    for key in ("frames", "episode_steps", "actions", "rewards", "terminated", "truncated"):
        assert np.array_equal(getattr(listed, key), getattr(streamed, key)), key
    assert streamed.written == listed.written == total
    for wrong in (total - 1, total + 1):
        with pytest.raises(ValueError, match="announced"):
            FrameReplayBuffer.from_episodes(iter_episodes(CATCH_DEMOS, limit=5), total_frames=wrong)


def test_demos_are_held_once_while_the_batch_source_is_built(catch_settings):
    """Peak memory of building the expert replay stays near one copy of the demo frames (a list of
    all episodes beside the buffer, as before, peaked at two: 12 GB for 120 Pong demos)."""
    import tracemalloc

    tracemalloc.start()
    source = BatchSource.from_demos(CATCH_DEMOS, catch_settings, num_demos=20, batch_size=8)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    frames = source.expert.frames.nbytes
    assert frames > 1_000_000  # big enough to dominate what else is allocated
    assert peak < 1.4 * frames, (peak, frames)


def test_stacks_never_cross_episode_boundaries():
    buffer = FrameReplayBuffer(capacity=20, num_streams=1, frame_shape=(2, 2), stack_size=4)
    steps = [0, 1, 2, 3, 0, 1]  # a new episode starts at slot 4
    for slot, step in enumerate(steps):
        buffer.add_observations(np.full((1, 4, 2, 2), slot + 1, np.uint8), np.array([step]))
        if slot not in (3, 5):  # slot 3 is terminal, slot 5 is the latest
            buffer.add_outcomes(np.array([1]), np.array([0.0]), np.array([False]), np.array([False]))
    stack = buffer._stack(np.array([0]), np.array([5]))[0]
    assert stack[:, 0, 0].tolist() == [0, 0, 5, 6]  # zero-padded, not frames of the old episode
    stack = buffer._stack(np.array([0]), np.array([3]))[0]
    assert stack[:, 0, 0].tolist() == [1, 2, 3, 4]
    streams, slots = buffer.sample_indices(200, np.random.default_rng(0))
    # the terminal slot 3 (no action) and the latest slot 5 (no next observation) are never sampled
    assert set(slots.tolist()) == {0, 1, 2, 4}


def test_ring_wraps_without_stale_frames():
    buffer = FrameReplayBuffer(capacity=8, num_streams=1, frame_shape=(1, 1), stack_size=4)
    for slot in range(30):  # one long episode, wraps several times
        buffer.add_observations(np.full((1, 4, 1, 1), slot, np.uint8), np.array([slot]))
        buffer.add_outcomes(np.array([0]), np.array([float(slot)]), np.array([False]), np.array([False]))
    batch = buffer.sample(256, np.random.default_rng(1))
    observations = batch.observations[:, :, 0, 0]
    newest = observations[:, -1]
    # each stack holds four consecutive frames and the reward belongs to the newest one
    assert torch.equal(observations, newest[:, None] - torch.arange(3, -1, -1)[None, :])
    assert torch.equal(batch.rewards, newest.float())
    assert torch.equal(batch.next_observations[:, -1, 0, 0], newest + 1)
    assert newest.min() >= 30 - 8 + 3  # the oldest live slots whose stacks were overwritten are skipped


def test_memory_per_transition():
    buffer = FrameReplayBuffer(capacity=10_000, num_streams=2)
    per_transition = buffer.nbytes / (2 * 10_000)
    assert per_transition <= 7.5 * 1024


def test_collector_fills_buffer_and_resume_round_trip(catch_settings):
    buffer = FrameReplayBuffer(capacity=100, num_streams=2)
    collector = Collector(catch_settings, 2, buffer, seed=0)
    rng = np.random.default_rng(0)
    collector.collect(lambda obs: rng.integers(3, size=len(obs)), steps=70)
    assert collector.env_steps == 2 * 70 - 2 * 2  # the two reset steps after episode ends do not count
    assert len(collector.finished_returns) == 4  # Catch episodes last 30 steps
    batch = buffer.sample(64, rng)
    # next observations continue the stacks of the observations
    assert torch.equal(batch.observations[:, 1:], batch.next_observations[:, :-1])
    restored = FrameReplayBuffer(capacity=100, num_streams=2)
    restored.load_state_dict(buffer.state_dict())
    a = buffer.sample(32, np.random.default_rng(5))
    b = restored.sample(32, np.random.default_rng(5))
    assert torch.equal(a.observations, b.observations) and torch.equal(a.actions, b.actions)
    with pytest.raises(ValueError, match="capacity differs"):
        FrameReplayBuffer(capacity=50, num_streams=2).load_state_dict(buffer.state_dict())
    collector.close()
