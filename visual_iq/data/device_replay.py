"""A `FrameReplayBuffer` mirrored onto the training device and sampled there.

On a GPU, sampling on the host costs more than the update itself: numpy gathers 2·B·stack
frames, the batch is copied to the device and the host waits for it every update. The mirror
keeps the buffer's frames (uint8, once each) and per-slot arrays as torch tensors on the device,
draws transitions with a torch generator on that device and rebuilds frame stacks there, so an
update needs nothing from the host.

The host buffer stays the record (writes, checkpoints, the replay's state on resume): the mirror
copies the slots written since its last sample before sampling, which for an online run is one
slot per env per env step. Sampling itself reads nothing from the host (the fill level is a
device tensor that `sync` sets), so a CUDA graph can record it (`visual_iq.train.gpu.whole_update`, which
syncs before each update, outside the graph). Stacks and transition validity follow `visual_iq.data.buffer` exactly
(tested: the same stacks, actions, rewards and flags for the same indices, and only valid
transitions drawn, uniformly).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import Tensor

from visual_iq.data.buffer import Batch, FrameReplayBuffer

_SLOT_ARRAYS = ("episode_steps", "actions", "rewards", "terminated", "truncated")


class DeviceReplay:
    """The tensors of ``buffer`` on ``device``; `sample` draws valid transitions uniformly there.

    Args:
        buffer: the host buffer to mirror (its writes are copied lazily, at `sample`).
        device: where the tensors live and sampling happens.
        static: the buffer is complete and never written again (the demos): the valid
            transitions and episode starts are listed once instead of at every sample.
    """

    def __init__(self, buffer: FrameReplayBuffer, device: torch.device | str, static: bool = False) -> None:
        self.buffer, self.device = buffer, torch.device(device)
        self.reload()
        self._offsets = torch.arange(buffer.stack_size - 1, -1, -1, device=self.device)  # oldest first
        self._valid_list: Tensor | None = None
        self._starts_list: Tensor | None = None
        if static:
            self._valid_list = torch.nonzero(self.valid_mask().flatten()).squeeze(1)
            self._starts_list = torch.nonzero(self._live_starts().flatten()).squeeze(1)

    # ------------------------------------------------------------------ keeping up with the host
    def reload(self) -> None:
        """Copy the whole host buffer (at start, and after it was loaded from a checkpoint)."""
        with warnings.catch_warnings():  # read-only demo frames (`visual_iq.data.frame_cache`): copied at once
            warnings.filterwarnings("ignore", "The given NumPy array is not writable")
            self.frames = torch.from_numpy(self.buffer.frames).to(self.device, copy=True)
        for name in _SLOT_ARRAYS:
            setattr(self, name, torch.from_numpy(getattr(self.buffer, name)).to(self.device, copy=True))
        self.written = torch.tensor(self.buffer.written, device=self.device)
        self.synced = self.buffer.written

    def sync(self) -> None:
        """Copy the slots the host buffer wrote since the last sync (and the newest slot before them,
        whose outcome `add_outcomes` fills in after its observation was written)."""
        buffer = self.buffer
        if buffer.written == self.synced:
            return
        first = max(self.synced - 1, 0, buffer.written - buffer.capacity)
        host_slots = np.arange(first, buffer.written) % buffer.capacity

        def to_device(array) -> Tensor:
            # From pageable memory a non-blocking copy is staged at once: the host does not wait for the GPU.
            return torch.from_numpy(array).to(self.device, non_blocking=True)

        device_slots = to_device(host_slots)
        self.frames[:, device_slots] = to_device(buffer.frames[:, host_slots])
        for name in _SLOT_ARRAYS:
            getattr(self, name)[:, device_slots] = to_device(getattr(buffer, name)[:, host_slots])
        self.written.fill_(buffer.written)  # in place: a recorded graph reads this tensor
        self.synced = buffer.written

    # ------------------------------------------------------------------ validity, as in FrameReplayBuffer
    def valid_mask(self) -> Tensor:
        """(streams, capacity) bool: slot k starts a transition k -> k+1 that can be sampled."""
        buffer = self.buffer
        size = torch.clamp(self.written, max=buffer.capacity)  # as synced (tensors: nothing read from the host)
        slots = torch.arange(buffer.capacity, device=self.device)
        ages = (slots - (self.written - size)) % buffer.capacity  # 0 = oldest live slot
        next_slots = (slots + 1) % buffer.capacity
        lookback = torch.clamp(self.episode_steps, max=buffer.stack_size - 1)
        return (
            (ages + 1 < size)
            & (ages >= lookback)  # the frames of the stack are still live
            & (self.actions >= 0)
            & (self.episode_steps[:, next_slots] == self.episode_steps + 1)
        )

    def _live_starts(self) -> Tensor:
        live = torch.arange(self.buffer.capacity, device=self.device) < self.buffer.size
        return (self.episode_steps == 0) & live

    # ------------------------------------------------------------------ sampling
    def sample_indices(self, batch_size: int, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        """Uniform (stream, slot) pairs of valid transitions, drawn on the device."""
        if self._valid_list is not None:
            flat = self._valid_list[torch.randint(len(self._valid_list), (batch_size,), device=self.device,
                                                  generator=generator)]
        else:
            self.sync()
            if self.synced < 2:
                raise ValueError("the replay holds no complete transition yet")
            # Inverse CDF over the valid slots (a graph can record it; multinomial may check on the host).
            counts = self.valid_mask().flatten().cumsum(0)
            draws = (torch.rand(batch_size, device=self.device, generator=generator) * counts[-1]).long()
            flat = torch.searchsorted(counts, draws, right=True).clamp_(max=len(counts) - 1)
        return flat // self.buffer.capacity, flat % self.buffer.capacity

    def stacks(self, streams: Tensor, slots: Tensor) -> Tensor:
        """(B, stack, H, W) uint8 observations at (stream, slot), zero frames before an episode's start."""
        positions = (slots[:, None] - self._offsets[None, :]) % self.buffer.capacity
        stacks = self.frames[streams[:, None], positions]
        in_episode = self._offsets[None, :] <= self.episode_steps[streams, slots][:, None]
        return stacks * in_episode[:, :, None, None]

    def gather(self, streams: Tensor, slots: Tensor) -> Batch:
        """The transitions starting at (stream, slot), as `FrameReplayBuffer.sample` returns them."""
        next_slots = (slots + 1) % self.buffer.capacity
        return Batch(
            observations=self.stacks(streams, slots),
            actions=self.actions[streams, slots].long(),
            rewards=self.rewards[streams, slots],
            next_observations=self.stacks(streams, next_slots),
            terminated=self.terminated[streams, slots],
            truncated=self.truncated[streams, slots],
        )

    def gather_n_step(self, streams: Tensor, slots: Tensor, n_step: int, gamma: float) -> Batch:
        """`FrameReplayBuffer.gather_n_step` on the device (the same transitions for the same indices)."""
        capacity = self.buffer.capacity
        size = torch.clamp(self.written, max=capacity)
        rewards = self.rewards[streams, slots].double()
        steps = torch.ones_like(slots)
        last = slots.clone()
        going = torch.ones_like(slots, dtype=torch.bool)
        ages = (slots - (self.written - size)) % capacity
        for j in range(1, n_step):
            following, after = (slots + j) % capacity, (slots + j + 1) % capacity
            going = going & ~self.terminated[streams, last] & ~self.truncated[streams, last] & (ages + j + 1 < size) \
                & (self.actions[streams, following] >= 0) \
                & (self.episode_steps[streams, after] == self.episode_steps[streams, following] + 1)
            rewards = rewards + torch.where(going, gamma**j * self.rewards[streams, following].double(), 0.0)
            steps = steps + going.long()
            last = torch.where(going, following, last)
        return Batch(
            observations=self.stacks(streams, slots),
            actions=self.actions[streams, slots].long(),
            rewards=rewards.float(),
            next_observations=self.stacks(streams, (last + 1) % capacity),
            terminated=self.terminated[streams, last],
            truncated=self.truncated[streams, last],
            steps=steps,
        )

    def sample(self, batch_size: int, generator: torch.Generator, n_step: int = 1, gamma: float = 1.0) -> Batch:
        indices = self.sample_indices(batch_size, generator)
        return self.gather(*indices) if n_step == 1 else self.gather_n_step(*indices, n_step, gamma)

    def sample_initial_observations(self, batch_size: int, generator: torch.Generator) -> Tensor:
        """Observations that start an episode (for the ``v0`` IQ variant)."""
        starts = self._starts_list
        if starts is None:
            self.sync()
            starts = torch.nonzero(self._live_starts().flatten()).squeeze(1)
        flat = starts[torch.randint(len(starts), (batch_size,), device=self.device, generator=generator)]
        return self.stacks(flat // self.buffer.capacity, flat % self.buffer.capacity)
