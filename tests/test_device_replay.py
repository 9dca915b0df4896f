"""The device-resident sampler against the host buffer: same stacks, actions and flags for the same
indices; only valid transitions drawn, uniformly; online writes followed; resumable. Runs on CPU."""

import numpy as np
import pytest
import torch

from visual_iq.data.batches import BatchSource
from visual_iq.data.buffer import FrameReplayBuffer
from visual_iq.data.demos import load_episodes
from visual_iq.data.device_replay import DeviceReplay

CATCH_DEMOS = "tests/data/catch"
FIELDS = ("observations", "actions", "rewards", "next_observations", "terminated", "truncated")


def _assert_same_transitions(buffer: FrameReplayBuffer, mirror: DeviceReplay) -> None:
    mask = buffer.valid_mask()
    assert torch.equal(mirror.valid_mask(), torch.from_numpy(mask))
    streams, slots = np.nonzero(mask)
    host = buffer.gather(streams, slots)
    device = mirror.gather(torch.from_numpy(streams), torch.from_numpy(slots))
    for field in FIELDS:
        assert torch.equal(getattr(device, field), getattr(host, field)), field


class RandomActing:
    """Writes env steps into every stream of ``buffer`` the way the `Collector` does (outcome of the
    latest observation, then the next observation), episodes ending at random, frames all distinct."""

    def __init__(self, buffer: FrameReplayBuffer, rng: np.random.Generator) -> None:
        self.buffer, self.rng = buffer, rng
        self.episode_steps = np.zeros(buffer.num_streams, np.int32)
        buffer.add_observations(self._frames(), self.episode_steps)

    def _frames(self) -> np.ndarray:
        shape = (self.buffer.num_streams, self.buffer.stack_size) + self.buffer.frames.shape[2:]
        return self.rng.integers(1, 256, shape, dtype=np.uint8)

    def steps(self, count: int) -> None:
        streams, rng = self.buffer.num_streams, self.rng
        for _ in range(count):
            done = rng.random(streams) < 0.15
            acted = rng.random(streams) < 0.9  # some steps are autoresets: no outcome recorded
            self.buffer.add_outcomes(rng.integers(6, size=streams), rng.normal(size=streams).astype(np.float32),
                                     done & acted, np.zeros(streams, bool), acted)
            self.episode_steps = np.where(done & acted, 0, self.episode_steps + 1).astype(np.int32)
            self.buffer.add_observations(self._frames(), self.episode_steps)


def test_demo_transitions_match_the_host_buffer():
    buffer = FrameReplayBuffer.from_episodes(load_episodes(CATCH_DEMOS))
    _assert_same_transitions(buffer, DeviceReplay(buffer, "cpu", static=True))


def test_ring_buffer_transitions_match_while_it_is_written_and_wraps():
    rng = np.random.default_rng(0)
    buffer = FrameReplayBuffer(capacity=23, num_streams=3, frame_shape=(5, 5), stack_size=4)
    acting = RandomActing(buffer, rng)
    acting.steps(3)
    mirror = DeviceReplay(buffer, "cpu")
    generator = torch.Generator().manual_seed(0)
    for steps in [1, 7, 2, 30, 5, 1, 1, 22, 23, 9, 4, 11]:  # the ring wraps between and during syncs
        acting.steps(steps)
        mirror.sample(4, generator)  # syncs the slots written since the last sample
        _assert_same_transitions(buffer, mirror)


def test_samples_are_valid_and_uniform():
    rng = np.random.default_rng(1)
    buffer = FrameReplayBuffer(capacity=40, num_streams=2, frame_shape=(3, 3), stack_size=4)
    RandomActing(buffer, rng).steps(60)
    valid = {tuple(index) for index in np.argwhere(buffer.valid_mask())}
    generator = torch.Generator().manual_seed(0)
    for mirror in (DeviceReplay(buffer, "cpu"), DeviceReplay(buffer, "cpu", static=True)):
        streams, slots = mirror.sample_indices(20_000, generator)
        drawn = list(zip(streams.tolist(), slots.tolist()))
        assert set(drawn) == valid  # every valid transition, nothing else
        counts = np.unique(np.array(drawn), axis=0, return_counts=True)[1]
        expected = 20_000 / len(valid)
        assert np.all(np.abs(counts - expected) < 5 * np.sqrt(expected)), (counts.min(), counts.max(), expected)


def test_initial_observations_are_episode_starts():
    buffer = FrameReplayBuffer.from_episodes(load_episodes(CATCH_DEMOS))
    mirror = DeviceReplay(buffer, "cpu", static=True)
    starts = {frame.tobytes() for frame in buffer.frames[0][buffer.episode_steps[0] == 0]}
    observations = mirror.sample_initial_observations(64, torch.Generator().manual_seed(0))
    assert torch.all(observations[:, :-1] == 0)  # the frames before an episode's start are zero
    assert all(observation[-1].numpy().tobytes() in starts for observation in observations)


@pytest.mark.parametrize("augment_shift", [0, 2])
def test_batch_source_on_a_device_samples_resumably(catch_settings, augment_shift):
    def source() -> BatchSource:
        return BatchSource.from_demos(CATCH_DEMOS, catch_settings, num_demos=None, batch_size=8,
                                      policy_capacity=50, num_envs=2, augment_shift=augment_shift,
                                      initial_states=True, seed=3, device="cpu")

    rng = np.random.default_rng(0)
    first = source()
    RandomActing(first.policy, rng).steps(30)
    first.sample()
    state = first.state_dict()
    assert "sampling_generator" in state
    expected = first.sample()
    assert expected["observations"].shape == (16, 4, 84, 84) and expected["observations"].dtype == torch.uint8
    assert expected["is_expert"].tolist() == [True] * 8 + [False] * 8
    assert expected["initial_observations"].shape == (8, 4, 84, 84)

    resumed = source()  # a fresh process: an empty policy replay until the checkpoint is loaded
    resumed.load_state_dict(state)
    batch = resumed.sample()
    for key in expected:
        assert torch.equal(batch[key], expected[key]), key
