"""The training batches: expert transitions, plus as many of the agent's own online, as tensors.

`BatchSource` owns what sampling needs (the expert and policy replay buffers, the random
generator, the augmentation) and its own checkpoint state, so that a resumed run continues the
same random stream over the same replay. With ``device`` it samples on that device from
`DeviceReplay` mirrors of the buffers (a GPU run then needs nothing from the host per update).
`BatchStream` hands its batches to Lightning as an
endless dataset; `OneDummyItem` is the data of validation and test, which play episodes instead.
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

import numpy as np
import torch
from torch.utils.data import IterableDataset

from visual_iq.data.augment import random_shift
from visual_iq.data.buffer import FrameReplayBuffer
from visual_iq.data.demos import demo_paths, demo_source_name, iter_episodes, stored_frames
from visual_iq.data.device_replay import DeviceReplay
from visual_iq.env.envs import FRAME_FIELDS, PROTOCOL_FIELDS, EnvSettings, check_observation_settings
from visual_iq.data.frame_cache import cached_replay

BATCH_KEYS = ("observations", "actions", "next_observations", "terminated")

DIAGNOSTIC_STREAM = 7_919
"""Seed offset of the stream that diagnostic batches are drawn from, apart from the training batches'."""


def sampling_device(device: torch.device, device_replay: bool | None = None) -> torch.device | None:
    """Where to sample batches when training on ``device``: there (``device_replay``; None: on a
    GPU, not on a CPU), or on the host (None)."""
    if device_replay is None:
        device_replay = device.type == "cuda"
    return device if device_replay else None


class BatchSource:
    """Samples ``batch_size`` expert transitions (and ``batch_size`` policy ones if ``policy``,
    unless a sample leaves them out).

    A batch is a dict of tensors: ``observations`` and ``next_observations`` (uint8, shifted by
    up to ``augment_shift`` pixels), ``actions``, ``terminated``, ``is_expert`` (the first
    ``batch_size`` rows, if there are demos: ``expert`` None samples the policy replay alone),
    ``initial_observations`` (episode starts of the demos) if ``initial_states``, and if ``rewards``
    the game's ``rewards`` and the ``steps`` each transition spans (``n_step`` > 1: n-step
    transitions discounted by ``gamma``, `FrameReplayBuffer.gather_n_step`). With ``device``, the
    batch is drawn and built on that device (by a torch generator there, seeded from ``seed``:
    another random stream than the host sampler's).
    """

    def __init__(self, expert: FrameReplayBuffer | None, policy: FrameReplayBuffer | None = None, *, batch_size: int,
                 augment_shift: int = 0, initial_states: bool = False, seed: int = 0,
                 device: torch.device | str | None = None, rewards: bool = False, n_step: int = 1,
                 gamma: float = 1.0) -> None:
        if expert is None and policy is None:
            raise ValueError("a batch source needs demonstrations, a policy replay or both")
        self.expert, self.policy = expert, policy
        self.batch_size, self.augment_shift, self.initial_states = batch_size, augment_shift, initial_states
        self.rewards, self.n_step, self.gamma = rewards, n_step, gamma
        self.rng = np.random.default_rng(seed)
        self.diagnostic_rng = np.random.default_rng(seed + DIAGNOSTIC_STREAM)
        self.generator: torch.Generator | None = None
        self.diagnostic_generator: torch.Generator | None = None
        self.mirrors: list[DeviceReplay] = []
        if device is not None:
            self.generator = torch.Generator(device).manual_seed(seed)
            self.diagnostic_generator = torch.Generator(device).manual_seed(seed + DIAGNOSTIC_STREAM)
            self.mirrors = [DeviceReplay(expert, device, static=True)] if expert is not None else []
            if policy is not None:
                self.mirrors.append(DeviceReplay(policy, device))
        self._before_last_sample: dict[str, Any] = self._sampling_state()

    @classmethod
    def from_demos(cls, demos: str | list[str] | None, settings: EnvSettings, *, num_demos: int | None, batch_size: int,
                   policy_capacity: int | None = None, num_envs: int = 1, cache_dir: str | None = None,
                   **options: Any) -> "BatchSource":
        """Expert transitions from the demo directory ``demos`` or directories (whose frames must match ``settings``;
        stacked to its ``stack_size``; None: no demos) and, if ``policy_capacity``, an empty policy
        replay of that many slots per env. With ``cache_dir``, the expert frames are decoded once into a file
        there and memory-mapped, shared by every run that reads them (`visual_iq.data.frame_cache`).
        ``options``: the sampling options of `BatchSource`."""
        frame_shape = (settings.screen_size, settings.screen_size)
        expert = None if demos is None else cls._expert_replay(demos, settings, num_demos, cache_dir)
        policy = None
        if policy_capacity is not None:
            policy = FrameReplayBuffer(policy_capacity, num_envs, frame_shape, settings.stack_size)
        return cls(expert, policy, batch_size=batch_size, **options)

    @staticmethod
    def _expert_replay(demos: str | list[str], settings: EnvSettings, num_demos: int | None,
                       cache_dir: str | None) -> FrameReplayBuffer:
        # One episode at a time into a buffer sized from the files: the demos in memory once (120 Pong
        # demos are ~6 GB of frames; a list of episodes beside the buffer was twice that at start-up).
        paths = demo_paths(demos, num_demos)
        total_frames = sum(stored_frames(path) for path in paths)
        episodes = iter_episodes(demos, limit=num_demos)
        first = next(episodes)
        check_observation_settings(first.settings, settings, f"demos in {demo_source_name(demos)}",
                                   FRAME_FIELDS + PROTOCOL_FIELDS)

        def build(frames: np.ndarray | None = None) -> FrameReplayBuffer:
            return FrameReplayBuffer.from_episodes(itertools.chain([first], episodes), settings.stack_size,
                                                   total_frames=total_frames, frames=frames)

        frame_shape = (settings.screen_size, settings.screen_size)  # the demos' (checked above)
        if cache_dir is None:
            return build()
        return cached_replay(paths, cache_dir, settings.stack_size, build, total_frames, frame_shape)

    def sample(self, with_policy: bool = True, *, diagnostic: bool = False) -> dict[str, torch.Tensor]:
        """One batch; ``with_policy=False`` leaves the policy rows out (for objectives that never
        read them, whose gradient is then the same at half the cost). ``diagnostic`` draws it from a
        stream of its own, so that batches only logged never change which ones are trained on."""
        if self.generator is not None:
            generator = self.diagnostic_generator if diagnostic else self.generator
            assert generator is not None
            rng: np.random.Generator | torch.Generator = generator
            mirrors = self.mirrors if with_policy or self.policy is None else self.mirrors[:1]
            parts = [mirror.sample(self.batch_size, generator, self.n_step, self.gamma) for mirror in mirrors]
        else:
            rng = self.diagnostic_rng if diagnostic else self.rng
            sources = (self.expert, self.policy) if with_policy or self.expert is None else (self.expert,)
            parts = [buffer.sample(self.batch_size, rng, self.n_step, self.gamma) for buffer in sources
                     if buffer is not None]
        keys = BATCH_KEYS + (("rewards", "steps") if self.rewards else ())
        batch = {key: torch.cat([_field(part, key) for part in parts]) for key in keys}
        expert_rows = self.batch_size if self.expert is not None else 0
        batch["is_expert"] = torch.arange(len(batch["actions"]), device=batch["actions"].device) < expert_rows
        if self.initial_states:
            expert = self.mirrors[0] if self.mirrors else self.expert
            batch["initial_observations"] = expert.sample_initial_observations(self.batch_size, rng)
        for key in ("observations", "next_observations", "initial_observations"):
            if key in batch:
                batch[key] = random_shift(batch[key], self.augment_shift, rng)
        return batch

    def sample_ahead(self, with_policy: bool = True) -> dict[str, torch.Tensor]:
        """`sample` for a loop that fetches one batch ahead of the update (Lightning's): the sampling state
        before it is kept, for ``state_dict(one_batch_ahead=True)``."""
        self._before_last_sample = self._sampling_state()
        return self.sample(with_policy)

    def sync(self) -> None:
        """Copy the policy slots written since the last sample to the device (sampling does it too;
        before a CUDA graph samples, it must happen outside the graph)."""
        for mirror in self.mirrors[1:]:
            mirror.sync()

    def fork(self, index: int) -> None:
        """Move on to an independent random stream (DDP ranks other than 0, after loading rank 0's state)."""
        self.rng = np.random.Generator(self.rng.bit_generator.jumped(index))
        if self.generator is not None:
            self.generator.manual_seed(int(self.rng.integers(2**62)))

    def _sampling_state(self) -> dict[str, Any]:
        state: dict[str, Any] = {"sampling_rng": self.rng.bit_generator.state}
        if self.generator is not None:
            state["sampling_generator"] = self.generator.get_state()
        return state

    def state_dict(self, one_batch_ahead: bool = False) -> dict[str, Any]:
        """The random generators' state and the policy replay (as tensors, for ``torch.save``).
        ``one_batch_ahead``: the last batch `sample_ahead` drew has not been trained on yet, so the state
        saved is the one before it, and a resumed run draws it again."""
        state = dict(self._before_last_sample) if one_batch_ahead else self._sampling_state()
        if self.policy is not None:
            state["policy_buffer"] = {key: torch.from_numpy(value) if isinstance(value, np.ndarray) else value
                                      for key, value in self.policy.state_dict().items()}
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "sampling_rng" in state:
            self.rng.bit_generator.state = state["sampling_rng"]
        if self.generator is not None and "sampling_generator" in state:
            self.generator.set_state(state["sampling_generator"])
        if self.policy is not None and "policy_buffer" in state:
            self.policy.load_state_dict({key: value.numpy() if isinstance(value, torch.Tensor) else value
                                         for key, value in state["policy_buffer"].items()})
            for mirror in self.mirrors[1:]:
                mirror.reload()


def _field(part: Any, key: str) -> torch.Tensor:
    """A batch field of a sampled part; ``steps`` is 1 for one-step transitions."""
    value = getattr(part, key)
    return torch.ones_like(part.actions) if value is None else value


class BatchStream(IterableDataset):
    """An endless stream of ``sample()`` batches; use with ``DataLoader(batch_size=None)``."""

    def __init__(self, sample: Callable[[], dict[str, torch.Tensor]]) -> None:
        self.sample = sample

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        while True:
            yield self.sample()


class OneDummyItem(IterableDataset):
    """One placeholder item: validation and test steps play episodes instead of reading data."""

    def __iter__(self) -> Iterator[torch.Tensor]:
        yield torch.zeros(1)
