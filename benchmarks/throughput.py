"""Throughput and memory figures of the pipeline on this machine. Prints a table; times nothing in tests.

    python benchmarks/throughput.py [--updates 200] [--threads 1] [--device cpu|cuda] [--batch-size 32]
        [--precisions 32 bf16] [--capture false true] [--whole-update 1 8] [--no-acting] [--json research/results/throughput.json]

(a) ms per offline IQ update, split up: Lightning's training loop (`visual-iq fit`'s), a raw
    PyTorch loop doing the same sampling, forward/backward, Adam step and target update, the
    update alone on a batch already there (the lower bound), and sampling alone; the loop and
    sampling overhead is Lightning's time over the update alone. Also the FLOP rate of the update
    (FLOPs of one update counted by torch's FlopCounterMode). (b) the same per precision and
    network, and with the update's loss replayed from CUDA graphs or not (``--capture``; cuda only,
    `visual_iq.train.gpu.capture`). On cuda, batches are sampled on the device (`device_replay`) as
    `visual-iq fit` does there. ``--whole-update K ...``: also with the whole update inside the
    training step (`visual_iq.train.gpu.whole_update`, on cuda with ``--capture true`` one CUDA graph), K
    updates per Lightning step, through Lightning's loop and alone (sampling included).
(c) env steps/s of `make_env` and of the vector env while acting greedily with the network.
(d) bytes per transition of the replay storage. (e) bytes per frame of the shipped demo files.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from visual_iq.data.batches import sampling_device
from visual_iq.data.buffer import FrameReplayBuffer
from visual_iq.train.gpu.capture import capture_blocker
from visual_iq.data.demos import episode_paths, load_episode
from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.files import atomic_write_text
from visual_iq.train.config import Data, Evaluation, Speed
from visual_iq.train.module import ENDLESS_STREAM_TRAINER_FLAGS, IQLearn
from visual_iq.algo.networks import polyak_update
from visual_iq.train.rollout import VectorRollout
from visual_iq.train.gpu.whole_update import WARMUP_UPDATES


class _StepTimer(L.Callback):
    def __init__(self) -> None:
        self.stamps: list[float] = []

    def on_train_batch_end(self, *args) -> None:
        self.stamps.append(time.perf_counter())


def _median_ms(stamps: list[float], skip: int) -> float:
    gaps = np.diff(stamps[min(skip, len(stamps) // 2):])  # the first updates warm up
    return 1000.0 * float(statistics.median(gaps))


def _model(network: str, precision: str, batch_size: int, capture: bool = False, **options) -> IQLearn:
    return IQLearn(env=EnvSettings("Pong"), data=Data(demos="demos/pong", num_demos=1, batch_size=batch_size),
                   network=network, evaluation=Evaluation(video=False),
                   speed=Speed(precision=precision, capture=capture, **options))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _ms_per_call(function, calls: int, device: torch.device, blocks: int = 5) -> float:
    """Median over ``blocks`` blocks of the mean ms per call (device work included: synced per block)."""
    function()  # warm-up
    per_block = max(calls // blocks, 1)
    means = []
    for _ in range(blocks):
        _sync(device)
        started = time.perf_counter()
        for _ in range(per_block):
            function()
        _sync(device)
        means.append(1000.0 * (time.perf_counter() - started) / per_block)
    return float(statistics.median(means))


def lightning_ms_per_update(network: str, precision: str, batch_size: int, updates: int, device: torch.device,
                            capture: bool, updates_per_step: int | None = None) -> float:
    """Median ms per update of `visual-iq fit`'s loop; with ``updates_per_step``, the whole update
    inside the training step, that many per step (the step's time divided by them)."""
    per_step = updates_per_step or 1
    options = dict(whole_update=True, updates_per_step=per_step) if updates_per_step else {}
    model, timer = _model(network, precision, batch_size, capture, **options), _StepTimer()
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=max(updates, 20 * per_step), limit_val_batches=0,
                        logger=False, enable_checkpointing=False, enable_progress_bar=False,
                        enable_model_summary=False, log_every_n_steps=50 * per_step, callbacks=[timer],
                        accelerator=device.type, devices=1)
    trainer.fit(model)
    return _median_ms(timer.stamps, skip=10) / per_step


def whole_update_alone_ms(network: str, precision: str, batch_size: int, updates: int, device: torch.device,
                          capture: bool) -> float:
    """ms per call of `visual_iq.train.gpu.whole_update.WholeUpdate` alone (sampling on the device included;
    with ``capture``, graph replays after the warm-up and the recording)."""
    model = _model(network, precision, batch_size, whole_update=True).to(device)
    model.batches = model.build_batch_source(sampling_device(device, True))
    whole = model.whole_update
    assert whole is not None
    whole.configure(capture, capture_blocker(device, bf16=precision == "bf16", grad_penalty=0.0, world_size=1),
                    model.batches.generator)
    whole.optimizer(model.optim.lr)
    counter = iter(range(10**9))
    for _ in range(WARMUP_UPDATES + 2):  # the eager warm-up and the recording are not timed
        whole(next(counter))
    return _ms_per_call(lambda: whole(next(counter)), updates, device)


def raw_loop_figures(network: str, precision: str, batch_size: int, updates: int, device: torch.device,
                     capture: bool) -> dict:
    """The work of `IQLearn.training_step` + optimizer + target update with no framework, timed as a
    whole (``raw_ms``), without sampling (``update_ms``: the same batch every time) and sampling
    alone (``sample_ms``); ``gflop_per_update``: torch's FlopCounterMode over one update."""
    model = _model(network, precision, batch_size).to(device)
    batches = model.build_batch_source(sampling_device(device))
    model.q_net.bf16_trunk = model.target_net.bf16_trunk = precision == "bf16"
    model.update_loss.configure(capture, capture_blocker(device, bf16=precision == "bf16", grad_penalty=0.0,
                                                         world_size=1))
    optimizer = model.configure_optimizers()

    def update(batch) -> None:
        loss = model.update_loss(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        polyak_update(model.target_net, model.q_net, model.optim.target_tau)

    def sample():
        return {key: value.to(device) for key, value in batches.sample().items()}

    # FLOPs counted eagerly (a graph replay runs no op the counter sees) on copies of the networks:
    # an autograd graph of the timed networks made on the default stream would break the recording.
    counter = FlopCounterMode(display=False)
    q_net, target_net = copy.deepcopy(model.q_net), copy.deepcopy(model.target_net)
    with counter:
        model.objective(q_net, target_net, sample())[0].backward()
    fixed = sample()
    return {
        "raw_ms": _ms_per_call(lambda: update(sample()), updates, device),
        "update_ms": _ms_per_call(lambda: update(fixed), updates, device),
        "sample_ms": _ms_per_call(sample, updates, device),
        "gflop_per_update": counter.get_total_flops() / 1e9,
    }


def acting_steps_per_second(num_envs: int | None, seconds: float = 5.0) -> float:
    """Env steps/s while a Nature-CNN soft-Q policy picks every action (``None``: `make_env`)."""
    model = _model("nature", "32", 32).eval()
    settings = EnvSettings("Pong")
    steps, started = 0, time.perf_counter()
    if num_envs is None:
        env = make_env(settings)
        observation, _ = env.reset(seed=0)
        while time.perf_counter() - started < seconds:
            observation, _, terminated, truncated, _ = env.step(int(model.agent.act(observation[None])[0]))
            steps += 1
            if terminated or truncated:
                observation, _ = env.reset()
        env.close()
    else:
        rollout = VectorRollout(settings, num_envs)
        while time.perf_counter() - started < seconds:
            rollout.step(model.agent.act)
        steps = rollout.env_steps
        rollout.close()
    return steps / (time.perf_counter() - started)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return "CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--updates", type=int, default=200, help="updates timed per configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--device", default="cpu", help="cpu or cuda")
    parser.add_argument("--batch-size", type=int, default=32, help="expert transitions per update")
    parser.add_argument("--precisions", nargs="+", default=["32", "bf16"], choices=["32", "bf16"])
    parser.add_argument("--capture", nargs="+", default=["false"], choices=["false", "true"],
                        help="replay the update's loss from CUDA graphs (cuda only): false, true or both")
    parser.add_argument("--whole-update", nargs="*", type=int, default=[], metavar="K",
                        help="also time the whole update in the training step, K updates per Lightning step")
    parser.add_argument("--no-acting", action="store_true", help="skip (c), the env steps/s")
    parser.add_argument("--json", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    machine = torch.cuda.get_device_name(device) if device.type == "cuda" else _cpu_model()
    results: dict = {"threads": args.threads, "torch": torch.__version__, "device": machine,
                     "batch_size": args.batch_size, "updates": {}}

    print(f"(a, b) ms per offline IQ update on {machine}, batch {args.batch_size}, {args.threads} torch "
          f"thread(s); medians, {args.updates} updates each")
    print("| network | precision | CUDA graphs | Lightning loop | raw loop | update alone | sampling "
          "| loop + sampling overhead | GFLOP/update | GFLOP/s (update alone) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for network in ("nature", "small"):
        for precision in args.precisions:
            for capture in (value == "true" for value in args.capture):
                row = raw_loop_figures(network, precision, args.batch_size, args.updates, device, capture)
                row["lightning_ms"] = lightning_ms_per_update(network, precision, args.batch_size, args.updates,
                                                              device, capture)
                row["overhead"] = row["lightning_ms"] / row["update_ms"] - 1.0
                row["gflop_per_s"] = row["gflop_per_update"] / (row["update_ms"] / 1000.0)
                results["updates"][f"{network}/{precision}" + ("/graphs" if capture else "")] = row
                print(f"| {network} | {precision} | {'yes' if capture else 'no'} | {row['lightning_ms']:.2f} "
                      f"| {row['raw_ms']:.2f} | {row['update_ms']:.2f} | {row['sample_ms']:.2f} | {row['overhead']:+.1%} "
                      f"| {row['gflop_per_update']:.2f} | {row['gflop_per_s']:.1f} |", flush=True)
    if args.whole_update:
        print("\n(b2) the whole update inside the training step (`whole_update`), ms per update")
        print("| network | precision | CUDA graph | updates per Lightning step | Lightning loop | whole update alone "
              "| updates/s through Lightning |")
        print("|---|---|---|---:|---:|---:|---:|")
    for network in ("nature", "small") if args.whole_update else ():
        for precision in args.precisions:
            for capture in (value == "true" for value in args.capture):
                alone = whole_update_alone_ms(network, precision, args.batch_size, args.updates, device, capture)
                for per_step in args.whole_update:
                    ms = lightning_ms_per_update(network, precision, args.batch_size, args.updates, device, capture,
                                                 per_step)
                    key = f"{network}/{precision}" + ("/graph" if capture else "") + f"/whole_update_{per_step}"
                    results["updates"][key] = {"lightning_ms": ms, "whole_update_alone_ms": alone}
                    print(f"| {network} | {precision} | {'yes' if capture else 'no'} | {per_step} | {ms:.2f} "
                          f"| {alone:.2f} | {1000.0 / ms:.0f} |", flush=True)
    if args.no_acting:
        _write_json(results, args.json)
        return

    print("\n(c) env steps/s while acting greedily with the Nature CNN (fp32)")
    results["acting"] = {"make_env": acting_steps_per_second(None)}
    print(f"make_env (python wrappers, 1 env): {results['acting']['make_env']:.0f}", flush=True)
    for num_envs in (1, 4, 8):
        results["acting"][f"vector_{num_envs}"] = acting_steps_per_second(num_envs)
        print(f"AtariVectorEnv, {num_envs} envs: {results['acting'][f'vector_{num_envs}']:.0f}", flush=True)

    buffer = FrameReplayBuffer(capacity=100_000, num_streams=1)
    results["bytes_per_transition"] = buffer.nbytes / buffer.capacity
    print(f"\n(d) replay storage: {results['bytes_per_transition']:.0f} bytes per transition "
          f"({results['bytes_per_transition'] / 1024:.2f} KiB; 1M transitions = "
          f"{results['bytes_per_transition'] * 1e6 / 2**30:.2f} GiB)")

    paths = episode_paths("demos/pong")
    frames = sum(len(load_episode(path).frames) for path in paths)
    size = sum(path.stat().st_size for path in paths)
    results["demo_bytes_per_frame"] = size / frames
    print(f"(e) demo files: {results['demo_bytes_per_frame']:.1f} bytes per frame "
          f"({len(paths)} Pong episodes, {frames:,} frames, {size / 2**20:.1f} MiB)")
    _write_json(results, args.json)


def _write_json(results: dict, path: str | None) -> None:
    if path:
        atomic_write_text(path, json.dumps(results, indent=2))  # makes the folder too


if __name__ == "__main__":
    main()
