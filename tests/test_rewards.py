"""Rank correlation used to judge recovered rewards."""

import numpy as np
import pytest

from visual_iq.rewards import pearson, spearman


def test_spearman_uses_average_ranks_for_ties():
    x = np.array([0.0, 0.0, 1.0, 2.0])
    y = np.array([10.0, 20.0, 30.0, 40.0])
    # ranks of x: 0.5, 0.5, 2, 3 ; ranks of y: 0, 1, 2, 3
    assert spearman(x, y) == pytest.approx(pearson(np.array([0.5, 0.5, 2, 3]), np.arange(4)))
    assert spearman(y, y ** 3) == pytest.approx(1.0)
    assert np.isnan(spearman(np.zeros(4), y))
