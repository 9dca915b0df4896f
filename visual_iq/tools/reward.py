"""``visual-iq reward --ckpt PATH --demos DIR``: the reward and policy a trained agent recovered.

Computes the implicit reward r = Q(s,a) − γ(1−d)V(s') along the episodes of DIR (use episodes
the agent was not trained on), prints its Pearson and Spearman correlation with the true game
reward, per step and per episode return, and saves a plot of one episode's implicit reward with
the true reward events marked. Also prints how often the agent's greedy action is the recorded
one (on expert episodes held out from training: how well the imitation generalises).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from visual_iq.algo.agent import load_agent
from visual_iq.data.demos import Episode, load_episodes
from visual_iq.errors import DemoError, VisualIQError
from visual_iq.analysis.rewards import demo_action_agreement, episode_q_values, implicit_rewards, reward_correlations


def plot_episode_rewards(implicit: np.ndarray, episode: Episode, out: str | Path, title: str) -> Path:
    """PNG: implicit reward per step, with the steps of positive / negative true reward marked."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise DemoError("plotting needs matplotlib (pip install 'visual-iq[plots]'); use --no-plot") from None
    out = Path(out)
    figure, axis = plt.subplots(figsize=(12, 4))
    axis.plot(implicit, linewidth=0.6, color="tab:blue", label="implicit reward Q − γV(s')")
    for sign, colour, name in ((1, "tab:green", "true reward > 0"), (-1, "tab:red", "true reward < 0")):
        steps = np.flatnonzero(np.sign(episode.rewards) == sign)
        if len(steps):
            axis.vlines(steps, implicit.min(), implicit.max(), colors=colour, alpha=0.35, linewidth=0.8, label=name)
    axis.set_xlabel("step")
    axis.set_ylabel("reward")
    axis.set_title(title)
    axis.legend(loc="upper right")
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=100)
    plt.close(figure)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="visual-iq reward", description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True, help="a visual-iq checkpoint")
    parser.add_argument("--demos", required=True, help="episodes to analyse (ideally held out from training)")
    parser.add_argument("--episodes", type=int, default=None, help="use only the first N episodes")
    parser.add_argument("--plot", default="reward.png", help="PNG of the first episode (default reward.png)")
    parser.add_argument("--no-plot", action="store_true", help="skip the plot")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    args = parser.parse_args(argv)
    try:
        episodes = load_episodes(args.demos, limit=args.episodes)
        agent = load_agent(args.ckpt, episodes[0].settings)
        q_values = [episode_q_values(agent, episode) for episode in episodes]  # one pass of the network
        result = {"episodes": len(episodes), "steps": int(sum(e.length for e in episodes)),
                  **reward_correlations(agent, episodes, q_values), **demo_action_agreement(agent, episodes, q_values)}
        if not args.no_plot:
            implicit = implicit_rewards(agent, episodes[0], q_values[0])
            title = f"{episodes[0].settings.game}: implicit reward along episode 0 of {args.demos}"
            result["plot"] = str(plot_episode_rewards(implicit, episodes[0], args.plot, title))
    except VisualIQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{result['episodes']} episodes, {result['steps']} steps of {args.demos}")
    print(f"per step:   Pearson {result['step_pearson']:+.3f}  Spearman {result['step_spearman']:+.3f}")
    print(f"per return: Pearson {result['return_pearson']:+.3f}  Spearman {result['return_spearman']:+.3f}")
    print(f"greedy action = recorded action on {result['expert_action_accuracy']:.3f} of steps (commonest "
          f"action {result['expert_action_base_rate']:.3f}; balanced over actions "
          f"{result['expert_action_balanced_accuracy']:.3f})")
    if "plot" in result:
        print(f"plot: {result['plot']}")
    return 0
