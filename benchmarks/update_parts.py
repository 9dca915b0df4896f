"""Where one offline IQ update's time goes on this machine (Nature CNN, batch 32, fp32, Pong demos).

    python benchmarks/update_parts.py adam THREADS      # Adam step per implementation; whole update, plain vs fused
    python benchmarks/update_parts.py profile THREADS   # torch.profiler: the operators of 20 updates

``adam`` first times the optimizer step alone (default, foreach and fused implementations, random
gradients), then whole updates with the plain and the fused optimizer in one process, alternating
8 blocks of 15 updates (these machines drift, so the two are measured side by side).
"""

from __future__ import annotations

import statistics
import sys
import time

import torch
from torch.profiler import ProfilerActivity, profile

from visual_iq.module import IQLearn
from visual_iq.networks import polyak_update


def _model() -> IQLearn:
    return IQLearn(game="Pong", demos="demos/pong", num_demos=1, network="nature", precision="32", batch_size=32,
                   eval_video=False)


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
            for update in range(15):
                started = time.perf_counter()
                loss, _, _ = model.objective(model.q_net, model.target_net, batches.sample())
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                polyak_update(model.target_net, model.q_net, 0.005)
                if update >= 2:
                    times[name].append(time.perf_counter() - started)
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


def main() -> None:
    mode, threads = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(threads)
    {"adam": adam, "profile": profile_updates}[mode](_model())


if __name__ == "__main__":
    main()
