"""Where one offline IQ update's time goes on this machine (Nature CNN, batch 32, fp32, Pong demos).

    python research/update_parts.py adam THREADS      # Adam step per implementation; whole update, plain vs fused
    python research/update_parts.py profile THREADS   # torch.profiler: the operators of 20 updates
    python research/update_parts.py precision THREADS # fp32 against the bf16 trunk, Nature and small CNN, batch 64
    python research/update_parts.py ema THREADS       # the weight average's update: Lightning's EMA against ours

``precision`` answers whether ``precision: auto`` picked the faster precision on this machine (bf16
only where the CPU has native bf16): whole updates with the fp32 and the bf16 trunk alternating
in one process, 8 blocks of 15 updates each, for both networks.
``adam`` first times the optimizer step alone (default, foreach and fused implementations, random
gradients), then whole updates with the plain and the fused optimizer in one process, alternating
8 blocks of 15 updates (these machines drift, so the two are measured side by side).
``ema`` times what an EMA callback adds to every update, the average's update alone, for Lightning's
``EMAWeightAveraging`` (one op per weight tensor) and `visual_iq.train.averaging.EMA` (one foreach lerp),
alternating 8 blocks of 25 updates, for both networks; then whole updates (batch 64, fp32) without an
average and followed by each callback's update, alternating 8 blocks of 15.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable

import torch
from lightning.pytorch.callbacks import EMAWeightAveraging
from torch.profiler import ProfilerActivity, profile

from visual_iq.train.averaging import EMA
from visual_iq.data.batches import BatchSource
from visual_iq.env.envs import EnvSettings
from visual_iq.train.config import Data, Evaluation, Speed
from visual_iq.train.module import IQLearn
from visual_iq.algo.networks import cpu_has_native_bf16, polyak_update, resolve_precision


def _model(network: str = "nature", batch_size: int = 32) -> IQLearn:
    return IQLearn(env=EnvSettings("Pong"), data=Data(demos="demos/pong", num_demos=1, batch_size=batch_size),
                   network=network, evaluation=Evaluation(video=False), speed=Speed(precision="32"))


def _timed_updates(model: IQLearn, batches: BatchSource, optimizer: torch.optim.Optimizer,
                   updates: int = 15, warmup: int = 2, after: Callable[[], None] | None = None) -> list[float]:
    """Seconds of each of ``updates`` whole updates (loss, backward, optimizer step, Polyak, then ``after``),
    the first ``warmup`` left out: one block of the alternating comparisons below."""
    times = []
    for update in range(updates):
        started = time.perf_counter()
        loss, _, _ = model.objective(model.q_net, model.target_net, batches.sample())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        polyak_update(model.target_net, model.q_net, 0.005)
        if after is not None:
            after()
        if update >= warmup:
            times.append(time.perf_counter() - started)
    return times


def adam(model: IQLearn) -> None:
    parameters = list(model.q_net.parameters())
    print(f"Adam step alone, {sum(p.numel() for p in parameters):,} weights, {torch.get_num_threads()} thread(s):")
    for options in ({}, {"foreach": True}, {"fused": True}):
        optimizer = torch.optim.Adam(parameters, lr=1e-4, **options)
        for parameter in parameters:
            parameter.grad = torch.randn_like(parameter)
        times = []
        for _ in range(40):
            started = time.perf_counter()
            optimizer.step()
            times.append(time.perf_counter() - started)
        print(f"  {options or 'default'}: {1000 * statistics.median(times[5:]):.2f} ms")
    batches = model.build_batch_source()
    optimizers = {"plain": torch.optim.Adam(parameters, lr=1e-4),
                  "fused": torch.optim.Adam(parameters, lr=1e-4, fused=True)}
    times: dict[str, list[float]] = {name: [] for name in optimizers}
    for _ in range(8):
        for name, optimizer in optimizers.items():
            times[name] += _timed_updates(model, batches, optimizer)
    for name, values in times.items():
        print(f"whole update, {name} Adam: {1000 * statistics.median(values):.1f} ms (median of {len(values)})")


def profile_updates(model: IQLearn) -> None:
    batches = model.build_batch_source()
    optimizer = model.configure_optimizers()

    def update() -> None:
        loss, _, _ = model.objective(model.q_net, model.target_net, batches.sample())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for _ in range(5):
        update()
    with profile(activities=[ProfilerActivity.CPU]) as profiler:
        for _ in range(20):
            update()
    print(profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=15))


def precision() -> None:
    print(f"{torch.get_num_threads()} thread(s), native bf16: {cpu_has_native_bf16()}, "
          f"precision auto -> {resolve_precision('auto', 'cpu')}")
    for network in ("nature", "small"):
        model = _model(network, batch_size=64)
        batches, optimizer = model.build_batch_source(), model.configure_optimizers()
        times: dict[str, list[float]] = {"32": [], "bf16": []}
        for _ in range(8):
            for name in times:
                model.q_net.bf16_trunk = model.target_net.bf16_trunk = name == "bf16"
                times[name] += _timed_updates(model, batches, optimizer)
        fp32, bf16 = (statistics.median(times[name]) for name in ("32", "bf16"))
        print(f"{network} CNN, batch 64: fp32 {1000 * fp32:.1f} ms, bf16 trunk {1000 * bf16:.1f} ms per update "
              f"(medians of {len(times['32'])}; bf16 {fp32 / bf16:.2f}x the speed of fp32)")


def ema() -> None:
    print(f"{torch.get_num_threads()} thread(s): ms per update of the moving average (decay 0.9999), alone")
    for network in ("nature", "small"):
        model = _model(network)
        callbacks = {"Lightning EMAWeightAveraging": EMAWeightAveraging(decay=0.9999), "visual_iq EMA": EMA(0.9999)}
        times: dict[str, list[float]] = {name: [] for name in callbacks}
        for callback in callbacks.values():
            callback.setup(None, model, "fit")  # builds the AveragedModel as in a fit (the trainer is not read)
        for _ in range(8):
            for name, callback in callbacks.items():
                for _ in range(25):
                    started = time.perf_counter()
                    callback._average_model.update_parameters(model)
                    times[name].append(time.perf_counter() - started)
        figures = ", ".join(f"{name} {1000 * statistics.median(values[5:]):.2f} ms" for name, values in times.items())
        print(f"{network} CNN ({sum(p.numel() for p in model.parameters()):,} weights with the target network): {figures}")
        # in place: whole updates at batch 64 followed by each callback's average update, alternating blocks
        model = _model(network, batch_size=64)
        batches, optimizer = model.build_batch_source(), model.configure_optimizers()
        whole: dict[str, list[float]] = {"no average": [], **{name: [] for name in callbacks}}
        for callback in callbacks.values():
            callback.setup(None, model, "fit")
        for _ in range(8):
            for name in whole:
                average = callbacks[name]._average_model if name in callbacks else None
                whole[name] += _timed_updates(model, batches, optimizer,
                                              after=(lambda a=average: a.update_parameters(model)) if average else None)
        figures = ", ".join(f"{name} {1000 * statistics.median(values):.1f} ms" for name, values in whole.items())
        print(f"  whole update, batch 64, fp32, medians of {len(whole['no average'])}: {figures}")


def main() -> None:
    mode, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    if mode == "precision":
        precision()
    elif mode == "ema":
        ema()
    else:
        {"adam": adam, "profile": profile_updates}[mode](_model())


if __name__ == "__main__":
    main()
