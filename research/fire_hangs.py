"""How often a Breakout game waits ball-less: a NOOP agent (it never presses FIRE itself) in a vector
env with sticky actions 0.25 and FIRE pressed for it on the first ``--fire-steps`` steps of each life.

    python research/fire_hangs.py [--envs 64] [--steps 3000] [--fire-steps 2]

A lost FIRE leaves the game waiting until truncation; with ``--fire-steps 1`` (the rule before
2026-11-30) 22 of 64 envs hung within 3,000 steps, with 2 none did (research/results.md, "Four seeds
on 100 test games").
"""

import argparse
import time

import numpy as np
import torch

from visual_iq.env.envs import EnvSettings, make_vector_env

WAITING = 400
"""Steps without a lost life, an episode end or a point after which an env counts as hung
(a NOOP agent's ball is lost within ~30 steps of its launch)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--fire-steps", type=int, default=2)
    parser.add_argument("--seed", type=int, default=123)
    args = parser.parse_args()
    torch.set_num_threads(1)  # the env steps on at most torch's threads
    env = make_vector_env(EnvSettings("Breakout", fire_on_new_life=True), args.envs)
    env.rule.fire_steps = args.fire_steps  # `reset` starts every life from it
    _, info = env.reset(seed=args.seed)
    lives, since = info["lives"].copy(), np.zeros(args.envs, np.int64)
    hung, lives_ended, started = np.zeros(args.envs, bool), 0, time.perf_counter()
    for _ in range(args.steps):
        _, rewards, terminated, truncated, info = env.step(np.zeros(args.envs, np.int64))
        ended = (info["lives"] < lives) | terminated | truncated  # a life over (counted once)
        lives_ended += int(ended.sum())
        since = np.where(ended | (rewards != 0), 0, since + 1)
        hung |= since > WAITING
        lives = info["lives"].copy()
    env.close()
    print(f"FIRE on {args.fire_steps} step(s) per life: {lives_ended} lives ended; envs waiting over {WAITING} "
          f"steps without the ball: {int(hung.sum())} of {args.envs} ({time.perf_counter() - started:.0f} s)")


if __name__ == "__main__":
    main()
