"""Do the frames hold back the Pong imitators? The same demos, imitated from the emulator's RAM.

    python research/ram_imitation.py DEMO_DIR [DEMO_DIR ...] --held-out HELD_OUT_DIR [--agent AGENT.ckpt]
        [--games 20] [--seed 40000] [--epochs 20] [--json OUT.json]

Every pixel agent here plateaus at ~+14.5 on Pong while its demonstrator plays ~+18 in the same env.
Either the frames lose what the expert decides from (it reads the RAM and simulates the emulator), or
the expert's choices are hard to imitate from this many demos whatever the input. This script takes
demos that replay exactly from their seeds (recorded by an expert that never touched the game's
emulator: ``--deterministic-plans`` ones, or any recorded since the 2026-12-06 fix), replays them to
read the RAM before every step, fits behavioural cloning on it (an MLP on the bits and bytes of the
RAM at this step and the one before), and prints its agreement with the demonstrator on the episodes
of ``--held-out`` (all steps, and the planned phase: the ball approaching, past the expert's
``plan_from``), beside a pixel agent's (``--agent``) on the same steps, then its return over
``--games`` fresh games (greedy, the demos' env settings). An imitator from the RAM that plays near
the expert says the pixels lose it; one that plateaus where the pixel agents do says the demos do.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import sys
import time
from types import SimpleNamespace

import numpy as np
import torch
from torch import Tensor, nn

from visual_iq.data.demos import Episode, demo_paths, load_episode
from visual_iq.env.envs import make_env
from visual_iq.errors import VisualIQError
from visual_iq.record.experts import game_spec
from visual_iq.files import atomic_write, atomic_write_text
from visual_iq.record.replay import replay

PONG = game_spec("Pong")  # the expert's RAM layout: ball x (towards the paddle), ball y, paddle y
CPU_PADDLE_Y = 50  # the opponent's paddle (shared/atari-notes.md)


def replay_rams(episode: Episode, where: str) -> np.ndarray:
    """The RAM before each step of ``episode``, its game replayed from its seed (`DemoError` naming
    ``where`` if it does not replay exactly)."""
    return np.stack([env.unwrapped.ale.getRAM().copy() for step, _screen, env in replay(episode, where)
                     if step < episode.length])


POSITIONS = [PONG.ball_towards, PONG.ball_along, PONG.paddle, CPU_PADDLE_Y]
FEATURES = {"all": (list(range(128)), 2), "positions": (POSITIONS, 3)}
"""RAM bytes read, and how many steps of them (this one and those before)."""


def features(rams: np.ndarray, indices: list[int], steps: int) -> Tensor:
    """uint8 bits and bytes of the RAM bytes ``indices`` at this step and the ``steps`` − 1 before (the
    first step repeats itself); `as_input` makes them the network's input."""
    history = [rams[:, indices]]
    for _ in range(steps - 1):
        history.append(np.concatenate([history[-1][:1], history[-1][:-1]]))
    stacked = np.concatenate(history, axis=1)
    bits = np.unpackbits(stacked[:, :, None], axis=2).reshape(len(rams), -1)
    return torch.as_tensor(np.concatenate([bits, stacked], axis=1))


def as_input(features: Tensor) -> Tensor:
    """Bits as 0/1, bytes scaled to [0, 1] (a byte comes with its 8 bits: the last ninth are bytes)."""
    x = features.float()
    x[:, -features.shape[1] // 9:] /= 255.0
    return x


def planned(rams: np.ndarray) -> np.ndarray:
    """Steps where the ball approaches the player's paddle past the expert's ``plan_from`` (its planned phase)."""
    x = rams[:, PONG.ball_towards].astype(int)
    previous = np.concatenate([x[:1], x[:-1]])
    visible = (rams[:, PONG.ball_towards] != 0) & (rams[:, PONG.ball_along] != 0)
    return visible & (x > previous) & (x >= PONG.plan_from)


@torch.no_grad()
def greedy(net: nn.Module, inputs: Tensor) -> np.ndarray:
    return torch.cat([net(as_input(inputs[i:i + 4096])).argmax(1) for i in range(0, len(inputs), 4096)]).numpy()


def fit(inputs: Tensor, actions: Tensor, epochs: int, seed: int, held_out: tuple[Tensor, np.ndarray],
        decay: bool = False, ema: float | None = None) -> nn.Module:
    """Behavioural cloning (cross-entropy, Adam) of ``actions`` from RAM ``inputs``; the held-out
    agreement is printed after every epoch. ``decay``: the learning rate falls to 0 on a cosine;
    ``ema``: the returned network is an exponential moving average of the weights (that decay per update)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(inputs.shape[1], 512), nn.ReLU(), nn.Linear(512, 512), nn.ReLU(), nn.Linear(512, 6))
    optimizer = torch.optim.Adam(net.parameters(), lr=3e-4)
    updates = epochs * -(-len(inputs) // 512)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, updates) if decay else None
    averaged = torch.optim.swa_utils.AveragedModel(net, multi_avg_fn=torch.optim.swa_utils.get_ema_multi_avg_fn(ema)) if ema else None
    for epoch in range(epochs):
        order = torch.randperm(len(inputs))
        total = 0.0
        for start in range(0, len(order), 512):
            batch = order[start:start + 512]
            loss = nn.functional.cross_entropy(net(as_input(inputs[batch])), actions[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            if schedule is not None:
                schedule.step()
            if averaged is not None:
                averaged.update_parameters(net)
            total += loss.item() * len(batch)
        agreement = np.mean(greedy(averaged.module if averaged else net, held_out[0]) == held_out[1])
        print(f"epoch {epoch + 1}: training loss {total / len(order):.4f}, held-out agreement {agreement:.4f}", flush=True)
    return averaged.module if averaged else net


def pixel_greedy(ckpt: str, held_out: str) -> np.ndarray:
    """A pixel agent's greedy action on every step of the held-out demos."""
    from visual_iq.algo.agent import load_agent
    from visual_iq.analysis.rewards import episode_q_values, episodes_for_agent

    agent = load_agent(ckpt)
    return np.concatenate([episode_q_values(agent, e)[:-1].argmax(1).numpy() for e in episodes_for_agent(agent, held_out)])


def load(directories: str | list[str]) -> tuple[list[np.ndarray], list[SimpleNamespace]]:
    """The RAM of every step of the demos (replayed) and their actions and settings (not their frames)."""
    rams, episodes = [], []
    for path in demo_paths(directories):
        episode = load_episode(path)
        rams.append(replay_rams(episode, str(path)))
        episodes.append(SimpleNamespace(actions=episode.actions.astype(np.int64), settings=episode.settings))
    return rams, episodes


def play(net: nn.Module, settings, games: int, seed: int, indices: list[int], steps: int) -> list[float]:
    env = make_env(settings)
    returns = []
    try:
        for index in range(games):
            env.reset(seed=seed + index)
            ale = env.unwrapped.ale
            window, total, done = [ale.getRAM().copy()] * steps, 0.0, False  # the first step repeats itself
            while not done:
                window = window[1:] + [ale.getRAM().copy()]
                with torch.no_grad():
                    action = int(net(as_input(features(np.stack(window), indices, steps)[-1:])).argmax())
                _, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                done = terminated or truncated
            returns.append(total)
            print(f"game {index + 1}/{games}: {total:+.0f}", flush=True)
    finally:
        env.close()
    return returns


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("demos", nargs="+")
    parser.add_argument("--held-out", required=True, help="demo directory kept apart for the agreement")
    parser.add_argument("--agent", help="a pixel agent to compare on the held-out steps")
    parser.add_argument("--agent-frames", help="the held-out games in the agent's frame settings (default: --held-out)")
    parser.add_argument("--games", type=int, default=20, help="fresh games to play (0: none)")
    parser.add_argument("--seed", type=int, default=40000)
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--features", choices=sorted(FEATURES), default="all",
                        help="all: the whole RAM, 2 steps; positions: ball x/y and both paddles' y, 3 steps")
    parser.add_argument("--history", type=int, help="steps of RAM read (default: 2 for all, 3 for positions)")
    parser.add_argument("--decay", action="store_true", help="cosine learning-rate decay to 0")
    parser.add_argument("--ema", type=float, help="play with an EMA of the weights, this decay per update")
    parser.add_argument("--cache", help="pickle of the replayed RAM and actions (written if missing)")
    parser.add_argument("--json")
    args = parser.parse_args()
    indices, steps = FEATURES[args.features][0], args.history or FEATURES[args.features][1]
    torch.set_num_threads(args.threads)
    started = time.time()
    if args.cache and os.path.exists(args.cache):
        with open(args.cache, "rb") as f:
            rams, episodes, test_rams, test_episodes = pickle.load(f)
    else:
        rams, episodes = load(args.demos)
        test_rams, test_episodes = load(args.held_out)
        if args.cache:  # atomic: an interrupted write must not leave a cache that later fails to load
            atomic_write(args.cache, lambda f: pickle.dump((rams, episodes, test_rams, test_episodes), f))
    print(f"replayed {len(episodes)} + {len(test_episodes)} episodes, {sum(map(len, rams)):,} + "
          f"{sum(map(len, test_rams)):,} steps, {time.time() - started:.0f} s", flush=True)
    labels = np.concatenate([e.actions for e in test_episodes])
    test_x = torch.cat([features(r, indices, steps) for r in test_rams])
    net = fit(torch.cat([features(r, indices, steps) for r in rams]), torch.as_tensor(np.concatenate([e.actions for e in episodes])),
              args.epochs, seed=0, held_out=(test_x, labels), decay=args.decay, ema=args.ema)
    in_plan = np.concatenate([planned(r) for r in test_rams])
    result = {"demos": args.demos, "held_out": args.held_out, "train_episodes": len(episodes),
              "train_steps": int(sum(map(len, rams))), "held_out_steps": int(len(labels)),
              "held_out_planned_steps": int(in_plan.sum()), "epochs": args.epochs, "features": args.features,
              "history": steps, "decay": args.decay, "ema": args.ema}
    players = {"ram_mlp": greedy(net, test_x)}
    if args.agent:
        players["pixel_agent"] = pixel_greedy(args.agent, args.agent_frames or args.held_out)
        result["pixel_agent"] = args.agent
    for name, actions in players.items():
        result[f"{name}_agreement"] = float(np.mean(actions == labels))
        result[f"{name}_planned_agreement"] = float(np.mean(actions[in_plan] == labels[in_plan]))
        result[f"{name}_other_agreement"] = float(np.mean(actions[~in_plan] == labels[~in_plan]))
    print(json.dumps(result), flush=True)
    returns = play(net, episodes[0].settings, args.games, args.seed, indices, steps)
    if returns:
        result.update(games=args.games, seed=args.seed, returns=returns, mean_return=float(np.mean(returns)),
                      std_return=float(np.std(returns)))
    result["seconds"] = round(time.time() - started)
    print(json.dumps(result))
    if args.json:
        atomic_write_text(args.json, json.dumps(result, indent=1))


if __name__ == "__main__":
    try:
        main()
    except VisualIQError as error:  # a demo that does not replay, a missing directory: one line, not a traceback
        sys.exit(f"error: {error}")
