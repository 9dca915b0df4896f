"""Does averaging the Q of several trained agents (e.g. seeds of one recipe) play better than each alone?

    python research/ensemble.py --seed 30000 --episodes 20 A.ckpt B.ckpt [C.ckpt ...]

Plays the same ``--episodes`` games (env seeds ``--seed`` onwards; keep clear of the validation
games at 10000+ and the test games at 20000+ when the answer is to choose an agent) greedily with
argmax of the members' mean Q, and with each member alone, and prints the returns (``--sample``: actions
sampled from softmax(Q/α) instead of the argmax). An exploratory
check: the package has no ensemble agent (research/results.md, "An ensemble of seeds").
"""

from __future__ import annotations

import argparse
import time

import torch

from visual_iq.algo.agent import load_agent, soft_q_actions
from visual_iq.train.evaluation import evaluate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("ckpts", nargs="+", help="exported agents (or training checkpoints) of the same game")
    parser.add_argument("--seed", type=int, default=30_000, help="env seed of the first game")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--no-members", action="store_true", help="play only the ensemble")
    parser.add_argument("--sample", action="store_true",
                        help="sample actions from softmax(Q/alpha) (alpha of the first agent) instead of argmax")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    agents = [load_agent(path) for path in args.ckpts]
    settings = agents[0].settings
    for path, agent in zip(args.ckpts[1:], agents[1:]):
        if agent.settings != settings:
            parser.error(f"{path} was trained on other env settings than {args.ckpts[0]}")

    torch.manual_seed(args.seed)

    def mean_q_policy(observations):
        q = torch.stack([agent.q_values(observations) for agent in agents]).mean(dim=0)
        return soft_q_actions(q, agents[0].alpha, args.sample)

    players = [("ensemble of " + ", ".join(args.ckpts), mean_q_policy)]
    if not args.no_members:
        players += [(path, lambda observations, agent=agent: agent.act(observations, sample=args.sample))
                    for path, agent in zip(args.ckpts, agents)]
    for name, policy in players:
        start = time.perf_counter()
        result = evaluate(policy, settings, args.episodes, seed=args.seed)
        print(f"{name}: {result.mean:+.2f} ± {result.std:.2f} over {args.episodes} games from seed {args.seed} "
              f"({time.perf_counter() - start:.0f} s); returns {result.returns.astype(int).tolist()}", flush=True)


if __name__ == "__main__":
    main()
