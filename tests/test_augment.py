import numpy as np
import torch
import torch.nn.functional as F

from visual_iq.data.augment import random_shift


def test_random_shift_moves_whole_stacks_and_keeps_dtype():
    observations = torch.zeros(64, 4, 10, 10, dtype=torch.uint8)
    observations[:, :, 5, 5] = 255  # one bright pixel in every frame
    shifted = random_shift(observations, 2, np.random.default_rng(0))
    assert shifted.shape == observations.shape and shifted.dtype == torch.uint8
    positions = set()
    for stack in shifted:
        bright = [tuple(torch.nonzero(frame == 255)[0].tolist()) for frame in stack]
        assert len(set(bright)) == 1  # all frames of a stack moved together
        y, x = bright[0]
        assert abs(y - 5) <= 2 and abs(x - 5) <= 2
        positions.add((y, x))
    assert len(positions) > 10  # shifts vary across the batch


def test_edges_are_replicated_and_zero_pad_is_identity():
    observations = torch.full((2, 4, 6, 6), 87, dtype=torch.uint8)  # a flat, non-black background
    assert torch.all(random_shift(observations, 3, np.random.default_rng(1)) == 87)
    assert random_shift(observations, 0, np.random.default_rng(1)) is observations


def test_shift_is_a_crop_of_the_edge_replicated_batch():
    """Against an independent reference: float replicate-padding (torch's own) and one crop per stack."""
    observations = torch.randint(0, 256, (16, 4, 12, 9), dtype=torch.uint8)
    pad = 3
    shifted = random_shift(observations, pad, np.random.default_rng(7))
    offsets = np.random.default_rng(7).integers(0, 2 * pad + 1, size=(16, 2))  # the draws random_shift made
    padded = F.pad(observations.float(), (pad, pad, pad, pad), mode="replicate").to(torch.uint8)
    expected = torch.stack([padded[i, :, top:top + 12, left:left + 9] for i, (top, left) in enumerate(offsets)])
    assert torch.equal(shifted, expected)
