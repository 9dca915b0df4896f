"""How often agents take the demonstrator's action on demo states (training or held-out episodes).

    python research/demo_agreement.py DEMO_DIR AGENT.ckpt [AGENT.ckpt ...] [--episodes A:B]

For each agent: the share of the demo states of episodes A..B-1 (default: all) on which its greedy
action is the demonstrator's. On episodes it was not trained on, this is how well it generalises
the expert's choices; the expert's own consistency (research/expert_consistency.py) bounds it.
"""

from __future__ import annotations

import argparse

import torch

from visual_iq.algo.agent import load_agent
from visual_iq.analysis.rewards import episode_q_values, episodes_for_agent


def agreement(ckpt: str, demos: str, first: int, last: int | None) -> tuple[int, float]:
    """(states, share of them where the agent's greedy action is the demo's). Each episode's frames
    must be the agent's (`episodes_for_agent`)."""
    agent = load_agent(ckpt)
    states = agreed = 0
    for episode in episodes_for_agent(agent, demos, first, last):
        actions = torch.as_tensor(episode.actions.astype("int64"))
        greedy = episode_q_values(agent, episode)[:-1].argmax(1)  # the states an action was taken in
        states += len(actions)
        agreed += int((greedy == actions).sum())
    return states, agreed / max(1, states)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demos")
    parser.add_argument("agents", nargs="+")
    parser.add_argument("--episodes", default=":", help="A:B, a slice of the directory's episodes (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    first, _, last = args.episodes.partition(":")
    for ckpt in args.agents:
        states, share = agreement(ckpt, args.demos, int(first or 0), int(last) if last else None)
        print(f"{ckpt} on {states:,} states of {args.demos}[{args.episodes}]: agreement {share:.4f}")


if __name__ == "__main__":
    main()
