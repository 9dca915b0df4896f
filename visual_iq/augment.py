"""Random-shift image augmentation for pixel observations (DrQ, Kostrikov et al. 2020).

Each stacked observation is padded by ``pad`` pixels (edges replicated) and cropped back to its
size at a random offset, so the whole stack moves by the same (dy, dx) in [-pad, pad]. What the
agent must see, the ball relative to the paddle, keeps its geometry; what it must not latch on to,
exact pixel positions of a few demonstrations, varies. Cheap, and a standard fix for overfitting
when learning from few pixel demonstrations.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor


def random_shift(observations: Tensor, pad: int, rng: np.random.Generator | torch.Generator) -> Tensor:
    """Shift each (stack, H, W) observation of a (B, stack, H, W) batch by up to ``pad`` pixels.

    The dtype and device are kept (uint8 stays uint8); ``pad=0`` returns the input unchanged.
    The offsets come from ``rng``: a numpy generator, or a torch one on the batch's device (then
    nothing leaves the device). One gather for the whole batch, not a crop per observation.
    """
    if pad == 0:
        return observations
    batch, stack, height, width = observations.shape
    device = observations.device
    padded = F.pad(observations.float(), (pad, pad, pad, pad), mode="replicate").to(observations.dtype)
    if isinstance(rng, torch.Generator):
        offsets = torch.randint(0, 2 * pad + 1, (batch, 2), generator=rng, device=device)
    else:
        offsets = torch.from_numpy(rng.integers(0, 2 * pad + 1, size=(batch, 2))).to(device)
    rows = offsets[:, 0, None] + torch.arange(height, device=device)  # (B, H): padded rows to take
    cols = offsets[:, 1, None] + torch.arange(width, device=device)  # (B, W)
    index_b = torch.arange(batch, device=device)[:, None, None, None]
    index_c = torch.arange(stack, device=device)[None, :, None, None]
    return padded[index_b, index_c, rows[:, None, :, None], cols[:, None, None, :]]
