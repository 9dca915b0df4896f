"""Env steps/s of `make_vector_env` with random actions, full screen against Pong's cropped playfield.

    python benchmarks/vector_env.py [--envs 8] [--steps 500]
"""

import argparse
import time

import numpy as np
import torch

from visual_iq.env.envs import EnvSettings, make_vector_env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=500, help="vector steps timed, after 50 untimed")
    args = parser.parse_args()
    torch.set_num_threads(1)  # the env steps on at most torch's threads
    for crop in ({}, {"crop_top": 34, "crop_bottom": 16}):
        env = make_vector_env(EnvSettings("Pong", **crop), args.envs)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        for _ in range(50):
            env.step(rng.integers(0, 6, args.envs))
        start = time.perf_counter()
        for _ in range(args.steps):
            env.step(rng.integers(0, 6, args.envs))
        print(f"{'cropped' if crop else 'full screen'}: {args.envs * args.steps / (time.perf_counter() - start):,.0f} env steps/s")
        env.close()


if __name__ == "__main__":
    main()
