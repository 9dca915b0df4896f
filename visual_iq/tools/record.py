"""``visual-iq record --source {human,expert,agent} --game Pong --episodes N --out DIR``."""

from __future__ import annotations

import argparse
import sys

from visual_iq.env.envs import NOOP_MAX, STICKY_ACTIONS, EnvSettings
from visual_iq.errors import VisualIQError


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="visual-iq record",
        description="Record Atari demonstrations, one compressed file per finished episode.",
    )
    parser.add_argument("--source", choices=("human", "expert", "agent"), required=True,
                        help="human: play with the keyboard; expert: scripted look-ahead expert "
                             "(Pong, Breakout); agent: a trained checkpoint (--ckpt)")
    parser.add_argument("--game", default=None,
                        help="Pong, ALE/Pong-v5 or PongNoFrameskip-v4 style (default: Pong; agent: the checkpoint's)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="episodes to record (default: 1; human: until the window is closed)")
    parser.add_argument("--out", required=True, help="directory; episodes are added after existing ones")
    parser.add_argument("--seed", type=int, default=0, help="episode i is reset with seed + i")
    parser.add_argument("--sticky", type=float, default=None,
                        help=f"sticky-action probability (default: {STICKY_ACTIONS}; agent: the checkpoint's)")
    parser.add_argument("--noop-max", type=int, default=None,
                        help=f"random no-ops after reset (default: {NOOP_MAX}; agent: the checkpoint's)")
    parser.add_argument("--frame-skip", type=int, default=4,
                        help="human/expert: emulator frames per agent step (agent: the checkpoint's)")
    parser.add_argument("--stack-size", type=int, default=4,
                        help="human/expert: frames per observation (agent: the checkpoint's)")
    parser.add_argument("--crop-top", type=int, default=0,
                        help="human/expert: screen rows dropped above before resizing (Pong's playfield: 34)")
    parser.add_argument("--crop-bottom", type=int, default=0,
                        help="human/expert: screen rows dropped below before resizing (Pong's playfield: 16)")
    parser.add_argument("--terminal-on-life-loss", action="store_true",
                        help="human/expert: end an episode when a life is lost")
    parser.add_argument("--fps", type=int, default=15, help="human: agent steps per second (15 = real time)")
    parser.add_argument("--ckpt", default=None, help="agent (and --expert-labels): checkpoint path")
    parser.add_argument("--sample", action="store_true",
                        help="agent: sample actions from softmax(Q/α) instead of playing greedily (argmax Q)")
    parser.add_argument("--min-return", type=float, default=None,
                        help="agent: keep only games that score at least this (e.g. 21 on Pong); others are not saved")
    parser.add_argument("--max-games", type=int, default=None,
                        help="agent, with --min-return: games to play at most (default: 10 per episode asked for)")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch threads for the agent's network (default 1: one observation at a time gains "
                             "nothing from more, and a run training beside it keeps its cores)")
    parser.add_argument("--action-noise", type=float, default=0.0,
                        help="expert: probability of executing a random action instead of the expert's "
                             "(the expert's action is recorded; DART-style recovery demos)")
    parser.add_argument("--deterministic-plans", action="store_true",
                        help="expert: plan in a copy of the emulator without sticky actions, so the same "
                             "state always gives the same plan (labels easier to imitate)")
    parser.add_argument("--replan-every", type=int, default=6,
                        help="expert: agent steps between full plans while the ball approaches (1: every step)")
    parser.add_argument("--expert-labels", action="store_true",
                        help="compare a trained agent (--ckpt) with the scripted expert (Pong, Breakout) at "
                             "every step and print how often they agreed, per situation: on the agent's own "
                             "states (--source agent) or on the expert's (--source expert)")
    parser.add_argument("--dagger", action="store_true",
                        help="agent: as --expert-labels, and store the expert's action at every step instead "
                             "of the agent's (one round of DAgger): the agent's own states with the expert's "
                             "labels, to add to the demos")
    args = parser.parse_args(argv)
    if args.source == "agent" and args.ckpt is None:
        parser.error("--source agent needs --ckpt PATH")
    if (args.sample or args.min_return is not None or args.max_games is not None) and args.source != "agent":
        parser.error("--sample, --min-return and --max-games are for a trained agent: use --source agent --ckpt PATH")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    if args.replan_every < 1:
        parser.error(f"--replan-every must be >= 1, got {args.replan_every}")
    if args.dagger and args.source != "agent":
        parser.error("--dagger labels a trained agent's own states: use --source agent --ckpt PATH")
    if args.expert_labels and (args.source == "human" or args.ckpt is None):
        parser.error("--expert-labels compares a trained agent with the expert: use --source agent or expert, and --ckpt PATH")
    return args


def settings_from_args(args: argparse.Namespace) -> EnvSettings:
    """The env settings a human or expert recording uses."""
    sticky = STICKY_ACTIONS if args.sticky is None else args.sticky
    noop_max = NOOP_MAX if args.noop_max is None else args.noop_max
    return EnvSettings(args.game or "Pong", sticky_actions=sticky, noop_max=noop_max,
                       frame_skip=args.frame_skip, stack_size=args.stack_size,
                       crop_top=args.crop_top, crop_bottom=args.crop_bottom,
                       terminal_on_life_loss=args.terminal_on_life_loss)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    try:
        if args.source == "agent":
            from visual_iq.record.recorder import record_agent

            record_agent(args.ckpt, args.out, episodes=args.episodes or 1, seed=args.seed, game=args.game,
                         sticky_actions=args.sticky, noop_max=args.noop_max, sample=args.sample,
                         min_return=args.min_return, max_games=args.max_games, expert_labels=args.expert_labels,
                         dagger=args.dagger)
        elif args.source == "human":
            from visual_iq.record.recorder import record_human

            record_human(settings_from_args(args), args.out, episodes=args.episodes, seed=args.seed, fps=args.fps)
        else:
            from visual_iq.record.recorder import record_expert

            record_expert(settings_from_args(args), args.out, episodes=args.episodes or 1, seed=args.seed,
                          action_noise=args.action_noise, judge_ckpt=args.ckpt if args.expert_labels else None,
                          deterministic_plans=args.deterministic_plans, replan_every=args.replan_every)
    except VisualIQError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: finished episodes are saved", file=sys.stderr)
        return 130
    return 0
