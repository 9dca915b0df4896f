"""Does the bf16 conv trunk change what a trained agent plays? fp32 against bf16 on held-out demo states.

    python research/precision_actions.py AGENT.ckpt DEMO_DIR [EPISODES]

For each demo state: Q from the fp32 network and from the same network with its convolutions in
bf16 autocast (the head and Q stay fp32, as `precision: bf16` / `auto` run them). Prints the share of
states whose greedy action differs, the mean |ΔQ|, the median top-2 action gap in fp32, and the
agreement with the demonstrator's actions under each. (bf16 must be native on the CPU for this to be
fast; elsewhere it is emulated and slow but gives the same answer.)
"""

from __future__ import annotations

import argparse

import torch

from visual_iq.algo.agent import load_agent
from visual_iq.analysis.rewards import episode_q_values, episodes_for_agent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("agent")
    parser.add_argument("demos")
    parser.add_argument("episodes", type=int, nargs="?", default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    agent = load_agent(args.agent)
    totals = {"states": 0, "differ": 0.0, "abs_dq": 0.0, "agree_fp32": 0.0, "agree_bf16": 0.0}
    gaps = []
    for episode in episodes_for_agent(agent, args.demos, last=args.episodes):
        actions = torch.as_tensor(episode.actions.astype("int64"))
        q = {}
        for bf16 in (False, True):
            agent.q_net.bf16_trunk = bf16
            q[bf16] = episode_q_values(agent, episode)[:-1]  # the states an action was taken in
        top2 = q[False].topk(2, dim=1).values
        gaps.append(top2[:, 0] - top2[:, 1])
        totals["states"] += len(actions)
        totals["differ"] += (q[False].argmax(1) != q[True].argmax(1)).sum().item()
        totals["abs_dq"] += (q[False] - q[True]).abs().mean(1).sum().item()
        totals["agree_fp32"] += (q[False].argmax(1) == actions).sum().item()
        totals["agree_bf16"] += (q[True].argmax(1) == actions).sum().item()
    n = totals["states"]
    print(f"{args.agent} on {n:,} states of {args.demos}: greedy action differs on {int(totals['differ'])} "
          f"({100 * totals['differ'] / n:.3f} %), mean |dQ| {totals['abs_dq'] / n:.1e}, median top-2 gap "
          f"{torch.cat(gaps).median().item():.4f}, agreement with the demos fp32 {totals['agree_fp32'] / n:.4f} "
          f"bf16 trunk {totals['agree_bf16'] / n:.4f}")


if __name__ == "__main__":
    main()
