"""Does the Pong agent play better if it commits to its previous action unless another is clearly better?

    python research/commit_margin.py AGENT.ckpt --margins 0 1 2 4 --seed 50000 --episodes 40

The agent that misses a ball typically reverses its paddle in the last steps before the hit
(research/results.md, "Where the points are lost"). A commit margin m keeps the previous action while
its Q is within m·α of the best action's (α: the agent's temperature, so m is a log-odds of the
soft-Q policy), and otherwise plays greedily; m = 0 is greedy play. Each margin plays the same
``--episodes`` games (env seeds ``--seed`` onwards, 16 at a time, as `visual_iq.train.evaluation` does);
keep clear of the validation (10000+) and test (20000+) games if the answer is to choose a margin.
An exploratory check: the package acts greedily (research/results.md, "Committing to the previous action").
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from visual_iq.algo.agent import SoftQAgent, load_agent
from visual_iq.train.evaluation import ENVS_AT_ONCE
from visual_iq.train.rollout import VectorRollout


def committed_actions(q: torch.Tensor, previous: np.ndarray, margin: float) -> np.ndarray:
    """Greedy actions of Q (B, actions), except where the previous action's Q is within ``margin`` of the best."""
    best = q.max(dim=1)
    shortfall = best.values - q[torch.arange(len(q)), torch.as_tensor(previous)]
    return np.where(shortfall.cpu().numpy() <= margin, previous, best.indices.cpu().numpy())


def play(agent: SoftQAgent, margin: float, episodes: int, seed: int, max_steps: int = 30_000) -> np.ndarray:
    """Returns of ``episodes`` games (env seeds ``seed`` onwards) played with a commit margin of ``margin``·α."""
    returns = []
    for start in range(0, episodes, ENVS_AT_ONCE):
        envs = min(ENVS_AT_ONCE, episodes - start)
        rollout = VectorRollout(agent.settings, envs, seed + start)
        previous = np.zeros(envs, np.int64)  # NOOP before the first step
        running = np.ones(envs, bool)
        group_returns = np.zeros(envs)
        try:
            for _ in range(max_steps):
                step = rollout.step(lambda observations: committed_actions(
                    agent.q_values(observations), previous, margin * agent.alpha))
                previous = np.where(step.acted, step.actions, 0)  # a reset step starts the next game afresh
                group_returns[running] = step.episode_returns[running]
                running &= ~step.done
                if not running.any():
                    break
        finally:
            rollout.close()
        returns.append(group_returns)
    return np.concatenate(returns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpt", help="an exported agent (or training checkpoint)")
    parser.add_argument("--margins", type=float, nargs="+", default=[0.0, 1.0, 2.0, 4.0],
                        help="commit margins in units of the agent's temperature α (0: greedy)")
    parser.add_argument("--seed", type=int, default=50_000, help="env seed of the first game")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    agent = load_agent(args.ckpt)
    for margin in args.margins:
        started = time.perf_counter()
        returns = play(agent, margin, args.episodes, args.seed)
        print(f"margin {margin:g}·α: {returns.mean():+.2f} ± {returns.std():.2f} over {args.episodes} games from seed "
              f"{args.seed} ({time.perf_counter() - started:.0f} s); returns {returns.astype(int).tolist()}", flush=True)


if __name__ == "__main__":
    main()
