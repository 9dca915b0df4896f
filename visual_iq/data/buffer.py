"""Replay storage that keeps each frame once and rebuilds frame stacks when sampling.

A buffer holds ``num_streams`` ring buffers of slots (one stream per env, or one stream of
concatenated demo episodes). Slot k of a stream holds the newest frame of one observation and
``episode_step`` (0 for the first observation of an episode), plus what happened next:
the action taken from it (-1 if none: a terminal observation or the latest one), the reward, and
whether the *next* observation ended the episode. The observation at slot k is rebuilt as
frames[k-3 .. k], with zero frames for positions before the episode start (episode_step < j),
exactly like `FrameStackObservation(padding_type="zero")`; stacks therefore never cross an
episode boundary. A transition k -> k+1 is sampled only if both slots are live and belong to the
same episode. About 7.1 KB per transition with 84x84 frames.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import torch

from visual_iq.data.demos import Episode


@dataclass
class Batch:
    """Transitions as tensors: observations are uint8 (B, stack, H, W)."""

    observations: torch.Tensor
    actions: torch.Tensor
    rewards: torch.Tensor
    next_observations: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    steps: torch.Tensor | None = None
    """Steps from ``observations`` to ``next_observations`` (n-step samples; None: one each).
    ``rewards`` then holds their discounted sum, and ``terminated`` / ``truncated`` the last step's."""


class FrameReplayBuffer:
    """Ring buffers of frames with stacks rebuilt at sample time (see module docstring).

    Args:
        capacity: slots per stream (a slot is one observation, so ~ one transition).
        num_streams: independent streams, e.g. one per vectorised env.
        frame_shape: (H, W) of a frame.
        stack_size: frames per observation.
        frames: storage for the frames, (num_streams, capacity, H, W) uint8 (e.g. a memory-mapped
            file, `visual_iq.data.frame_cache`); None: zeros in memory.
    """

    def __init__(self, capacity: int, num_streams: int = 1, frame_shape: tuple[int, int] = (84, 84),
                 stack_size: int = 4, frames: np.ndarray | None = None) -> None:
        if capacity < 2 or num_streams < 1:
            raise ValueError(f"need capacity >= 2 and num_streams >= 1, got {capacity}, {num_streams}")
        self.capacity, self.num_streams, self.stack_size = capacity, num_streams, stack_size
        shape = (num_streams, capacity)
        if frames is not None and (frames.shape != shape + tuple(frame_shape) or frames.dtype != np.uint8):
            raise ValueError(f"frame storage is {frames.dtype} {frames.shape}, need uint8 {shape + tuple(frame_shape)}")
        self.frames = np.zeros(shape + tuple(frame_shape), np.uint8) if frames is None else frames
        self.episode_steps = np.zeros(shape, np.int32)
        self.actions = np.full(shape, -1, np.int16)
        self.rewards = np.zeros(shape, np.float32)
        self.terminated = np.zeros(shape, bool)
        self.truncated = np.zeros(shape, bool)
        self.written = 0  # slots written per stream so far (all streams advance together)

    # ------------------------------------------------------------------ writing
    def add_observations(self, observations: np.ndarray, episode_steps: np.ndarray) -> None:
        """Append one observation per stream: (N, stack, H, W) stacks (only the newest frame is kept)."""
        slot = self.written % self.capacity
        self.frames[:, slot] = observations[:, -1]
        self.episode_steps[:, slot] = episode_steps
        self.actions[:, slot] = -1
        self.rewards[:, slot] = 0.0
        self.terminated[:, slot] = False
        self.truncated[:, slot] = False
        self.written += 1

    def add_outcomes(self, actions: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                     truncated: np.ndarray, acted: np.ndarray | None = None) -> None:
        """Record what followed the latest observation of each stream (where ``acted`` is True)."""
        slot = (self.written - 1) % self.capacity
        acted = np.ones(self.num_streams, bool) if acted is None else acted
        self.actions[acted, slot] = actions[acted]
        self.rewards[acted, slot] = rewards[acted]
        self.terminated[acted, slot] = terminated[acted]
        self.truncated[acted, slot] = truncated[acted]

    @classmethod
    def from_episodes(cls, episodes: Iterable[Episode], stack_size: int | None = None,
                      total_frames: int | None = None, frames: np.ndarray | None = None) -> "FrameReplayBuffer":
        """One stream holding the demo episodes back to back (each keeps its T+1 frames).

        ``stack_size`` defaults to the recording's; frames are stored once, so any other works.
        With ``total_frames`` (their frame count, e.g. from `visual_iq.data.demos.stored_frames`) the
        episodes may come one at a time from an iterator and are copied in as they come: the
        demos are then in memory once, not twice. ``frames``: storage for them (see the class).
        """
        if total_frames is None:
            episodes = list(episodes)
            total_frames = sum(len(episode.frames) for episode in episodes)
        iterator = iter(episodes)
        first = next(iterator, None)
        if first is None:
            raise ValueError("no episodes to build a buffer from")
        settings = first.settings
        buffer = cls(total_frames, 1, (settings.screen_size, settings.screen_size), stack_size or settings.stack_size,
                     frames=frames)
        start = 0
        for episode in itertools.chain([first], iterator):
            end = start + len(episode.frames)
            if end > total_frames:
                raise ValueError(f"the episodes hold more than the {total_frames} frames announced")
            buffer.frames[0, start:end] = episode.frames
            buffer.episode_steps[0, start:end] = np.arange(len(episode.frames))
            buffer.actions[0, start:end - 1] = episode.actions
            buffer.rewards[0, start:end - 1] = episode.rewards
            buffer.terminated[0, start:end - 1] = episode.terminated
            buffer.truncated[0, start:end - 1] = episode.truncated
            start = end
        if start != total_frames:
            raise ValueError(f"the episodes hold {start} frames, {total_frames} were announced")
        buffer.written = total_frames
        return buffer

    # ------------------------------------------------------------------ reading
    @property
    def size(self) -> int:
        """Live slots per stream."""
        return min(self.written, self.capacity)

    def __len__(self) -> int:
        """Transitions that can be sampled (approximately: live slots with an action)."""
        return int((self._live_actions() >= 0).sum())

    def _live_actions(self) -> np.ndarray:
        return self.actions if self.written >= self.capacity else self.actions[:, : self.written]

    def _stack(self, streams: np.ndarray, slots: np.ndarray) -> np.ndarray:
        """(B, stack, H, W) observations at ring positions ``slots`` (already valid)."""
        offsets = np.arange(self.stack_size - 1, -1, -1)  # oldest first
        positions = (slots[:, None] - offsets[None, :]) % self.capacity
        stacks = self.frames[streams[:, None], positions]
        in_episode = offsets[None, :] <= self.episode_steps[streams, slots][:, None]
        stacks[~in_episode] = 0
        return stacks

    def valid_mask(self) -> np.ndarray:
        """(streams, capacity) bool: slot k starts a transition k -> k+1 that can be sampled."""
        streams, ages = np.indices((self.num_streams, self.capacity)).reshape(2, -1)
        slots, valid = self._valid(streams, ages)
        mask = np.zeros((self.num_streams, self.capacity), bool)
        mask[streams[valid], slots[valid]] = True
        return mask

    def _valid(self, streams: np.ndarray, ages: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Ring slots for ``ages`` (0 = oldest live slot) and which make a sampleable transition."""
        oldest = self.written - self.size
        slots = (oldest + ages) % self.capacity
        next_slots = (slots + 1) % self.capacity
        lookback = np.minimum(self.episode_steps[streams, slots], self.stack_size - 1)
        valid = (
            (ages + 1 < self.size)
            & (ages >= lookback)  # the frames of the stack are still live
            & (self.actions[streams, slots] >= 0)
            & (self.episode_steps[streams, next_slots] == self.episode_steps[streams, slots] + 1)
        )
        return slots, valid

    def sample_indices(self, batch_size: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Uniform (stream, slot) pairs of valid transitions, by rejection."""
        if self.size < 2 or len(self) == 0:
            raise ValueError("the buffer holds no complete transition yet")
        streams = np.empty(batch_size, np.int64)
        slots = np.empty(batch_size, np.int64)
        filled = 0
        for _ in range(1000):
            candidate_streams = rng.integers(self.num_streams, size=batch_size)
            candidate_slots, valid = self._valid(candidate_streams, rng.integers(self.size - 1, size=batch_size))
            take = min(int(valid.sum()), batch_size - filled)
            streams[filled:filled + take] = candidate_streams[valid][:take]
            slots[filled:filled + take] = candidate_slots[valid][:take]
            filled += take
            if filled == batch_size:
                return streams, slots
        raise RuntimeError("could not sample valid transitions (buffer almost empty?)")

    def sample(self, batch_size: int, rng: np.random.Generator, n_step: int = 1, gamma: float = 1.0) -> Batch:
        """Uniform valid transitions; ``n_step`` > 1: n-step ones (`gather_n_step`)."""
        indices = self.sample_indices(batch_size, rng)
        return self.gather(*indices) if n_step == 1 else self.gather_n_step(*indices, n_step, gamma)

    def gather(self, streams: np.ndarray, slots: np.ndarray) -> Batch:
        """The transitions starting at ring positions (``streams``, ``slots``), which must be valid."""
        next_slots = (slots + 1) % self.capacity
        return Batch(
            observations=torch.from_numpy(self._stack(streams, slots)),
            actions=torch.from_numpy(self.actions[streams, slots].astype(np.int64)),
            rewards=torch.from_numpy(self.rewards[streams, slots]),
            next_observations=torch.from_numpy(self._stack(streams, next_slots)),
            terminated=torch.from_numpy(self.terminated[streams, slots]),
            truncated=torch.from_numpy(self.truncated[streams, slots]),
        )

    def gather_n_step(self, streams: np.ndarray, slots: np.ndarray, n_step: int, gamma: float) -> Batch:
        """n-step transitions from valid ring positions: up to ``n_step`` steps of the same episode,
        fewer where it ends (or the newest slot is reached) first. ``rewards`` is Σ γ^j r_j over the
        m steps taken, ``next_observations`` the observation m steps on and ``steps`` m, so that the
        target is rewards + γ^m (1 − terminated) V(next_observations)."""
        rewards = self.rewards[streams, slots].astype(np.float64)
        steps = np.ones(len(slots), np.int64)
        last = slots.copy()  # the slot of the last step counted
        going = np.ones(len(slots), bool)
        ages = (slots - (self.written - self.size)) % self.capacity
        for j in range(1, n_step):
            following, after = (slots + j) % self.capacity, (slots + j + 1) % self.capacity
            going &= (
                ~self.terminated[streams, last] & ~self.truncated[streams, last]
                & (ages + j + 1 < self.size)  # its next observation is written and still live
                & (self.actions[streams, following] >= 0)
                & (self.episode_steps[streams, after] == self.episode_steps[streams, following] + 1)
            )
            rewards += np.where(going, gamma**j * self.rewards[streams, following], 0.0)
            steps += going
            last = np.where(going, following, last)
        return Batch(
            observations=torch.from_numpy(self._stack(streams, slots)),
            actions=torch.from_numpy(self.actions[streams, slots].astype(np.int64)),
            rewards=torch.from_numpy(rewards.astype(np.float32)),
            next_observations=torch.from_numpy(self._stack(streams, (last + 1) % self.capacity)),
            terminated=torch.from_numpy(self.terminated[streams, last]),
            truncated=torch.from_numpy(self.truncated[streams, last]),
            steps=torch.from_numpy(steps),
        )

    def sample_initial_observations(self, batch_size: int, rng: np.random.Generator) -> torch.Tensor:
        """Observations that start an episode (episode_step 0), for the ``v0`` IQ variant."""
        live = self.episode_steps[:, : self.size] == 0
        streams, slots = np.nonzero(live)
        if len(streams) == 0:
            raise ValueError("the buffer holds no initial observation")
        pick = rng.integers(len(streams), size=batch_size)
        return torch.from_numpy(self._stack(streams[pick], slots[pick]))

    @property
    def nbytes(self) -> int:
        return sum(array.nbytes for array in (self.frames, self.episode_steps, self.actions,
                                               self.rewards, self.terminated, self.truncated))

    # ------------------------------------------------------------------ resume
    def state_dict(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity, "num_streams": self.num_streams, "stack_size": self.stack_size,
            "written": self.written, "frames": self.frames, "episode_steps": self.episode_steps,
            "actions": self.actions, "rewards": self.rewards, "terminated": self.terminated,
            "truncated": self.truncated,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("capacity", "num_streams", "stack_size"):
            if state[key] != getattr(self, key):
                raise ValueError(f"buffer {key} differs: saved {state[key]}, now {getattr(self, key)}")
        self.written = int(state["written"])
        for key in ("frames", "episode_steps", "actions", "rewards", "terminated", "truncated"):
            getattr(self, key)[...] = np.asarray(state[key])
