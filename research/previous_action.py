"""Does the previous action tell more about the demonstrator's next choice than the agent's Q values?

    python research/previous_action.py AGENT.ckpt DEMO_DIR [--episodes A:B]

With sticky actions the emulator repeats the previous action on each frame with probability 0.25, and
the scripted experts plan from the emulator's state, which holds that action; the agent sees only
frames. If the action taken before were information the frames lack, a probe that reads it beside
the agent's Q values would predict the demonstrator better than the agent's greedy action does.

The probe is a multinomial logistic regression fitted on the even episodes of the demos and scored on
the odd ones (each a held-out agreement with the demonstrator), on four feature sets: the agent's
Q values (centred, in units of its temperature), the same plus the previous action (one-hot), the
same plus its products with the Q values (a separate reading of Q per previous action). Beside the
probes, on the states where the agent's greedy action is not the demonstrator's: how often the
action before (and after) is the demonstrator's choice, how often it is the agent's, and how often
both are the agent's (the demonstrator broke off a run of the agent's action for one step).
"""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import Tensor

from visual_iq.algo.agent import load_agent
from visual_iq.analysis.rewards import episode_q_values, episodes_for_agent


def demo_rows(ckpt: str, demos: str, first: int, last: int | None) -> dict[str, Tensor]:
    """Per demo step: the agent's Q (B, A), the action taken, the one before and after, the episode."""
    agent = load_agent(ckpt)
    rows: dict[str, list[Tensor]] = {"q": [], "action": [], "previous": [], "next": [], "episode": []}
    for index, episode in enumerate(episodes_for_agent(agent, demos, first, last)):
        actions = torch.as_tensor(episode.actions.astype("int64"))
        rows["q"].append(episode_q_values(agent, episode)[:-1].float() / agent.alpha)
        rows["action"].append(actions)
        rows["previous"].append(torch.cat([torch.zeros(1, dtype=torch.long), actions[:-1]]))  # NOOP before
        rows["next"].append(torch.cat([actions[1:], actions[-1:]]))
        rows["episode"].append(torch.full_like(actions, index))
    return {key: torch.cat(value) for key, value in rows.items()}


def probe_agreement(features: Tensor, actions: Tensor, train: Tensor, num_actions: int) -> float:
    """Fit softmax(features·W + b) to the actions of the train rows (L-BFGS); agreement on the rest."""
    weight = torch.zeros(features.shape[1], num_actions, requires_grad=True)
    bias = torch.zeros(num_actions, requires_grad=True)
    optimizer = torch.optim.LBFGS([weight, bias], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> Tensor:
        optimizer.zero_grad()
        loss = F.cross_entropy(features[train] @ weight + bias, actions[train])
        loss.backward()
        return loss

    optimizer.step(closure)
    with torch.no_grad():
        predicted = (features[~train] @ weight + bias).argmax(1)
    return float((predicted == actions[~train]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent")
    parser.add_argument("demos")
    parser.add_argument("--episodes", default=":", help="A:B, a slice of the directory's episodes (default: all)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    first, _, last = args.episodes.partition(":")
    rows = demo_rows(args.agent, args.demos, int(first or 0), int(last) if last else None)
    q, actions = rows["q"], rows["action"]
    num_actions = q.shape[1]
    q = (q - q.mean(1, keepdim=True)) / 100.0  # centred logits, scaled for the optimiser
    previous = F.one_hot(rows["previous"], num_actions).float()
    per_previous = (previous[:, :, None] * q[:, None, :]).flatten(1)
    train = rows["episode"] % 2 == 0
    greedy = float((q[~train].argmax(1) == actions[~train]).float().mean())
    print(f"{args.agent} on {args.demos}[{args.episodes}]: {len(actions):,} states, "
          f"{int(train.sum()):,} to fit the probes, {int((~train).sum()):,} to score them")
    print(f"the demonstrator repeats its previous action on {float((actions == rows['previous']).float().mean()):.4f}")
    print(f"held-out agreement, {'greedy action':<29} {greedy:.4f}")
    for name, features in (
        ("probe on Q", q),
        ("probe on Q + previous action", torch.cat([q, previous], 1)),
        ("probe on Q x previous action", torch.cat([q, previous, per_previous], 1)),
    ):
        print(f"held-out agreement, {name:<29} {probe_agreement(features, actions, train, num_actions):.4f}")
    wrong = q.argmax(1) != actions
    for key in ("previous", "next"):
        neighbour = rows[key][wrong]
        print(f"on the {int(wrong.sum()):,} states the agent gets wrong, the {key} action is the demonstrator's "
              f"on {float((neighbour == actions[wrong]).float().mean()):.3f}, "
              f"the agent's on {float((neighbour == q.argmax(1)[wrong]).float().mean()):.3f}")
    before, after, greedy_wrong = rows["previous"][wrong], rows["next"][wrong], q.argmax(1)[wrong]
    single_steps = float(((before == greedy_wrong) & (after == greedy_wrong)).float().mean())
    print(f"of them, single steps where the demonstrator breaks off a run of the agent's action: {single_steps:.3f}")


if __name__ == "__main__":
    main()
