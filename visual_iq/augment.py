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


def random_shift(observations: Tensor, pad: int, rng: np.random.Generator) -> Tensor:
    """Shift each (stack, H, W) observation of a (B, stack, H, W) batch by up to ``pad`` pixels.

    The dtype is kept (uint8 stays uint8); ``pad=0`` returns the input unchanged.
    """
    if pad == 0:
        return observations
    batch, _, height, width = observations.shape
    padded = F.pad(observations.float(), (pad, pad, pad, pad), mode="replicate").to(observations.dtype)
    offsets = rng.integers(0, 2 * pad + 1, size=(batch, 2))
    return torch.stack([padded[i, :, y:y + height, x:x + width] for i, (y, x) in enumerate(offsets)])
