"""On a GPU: is the update replayed from CUDA graphs the eager update, and how much faster is it?

    python benchmarks/device/check_capture.py [--updates 20] [--timed 300] [--json FILE]
    (--device cpu: a dry run of the script, eager against eager)

For each objective (offline IQ, the official online IQ recipe, online SQIL) and network, two
copies of the same initial networks take the same batches (Pong demos, sampled on the GPU; for
the online objectives the second half of each batch plays the policy rows): one eagerly, one
through `visual_iq.train.gpu.capture.UpdateLoss` with graphs recorded on the first batch. Printed: the
largest relative difference of the losses over ``--updates`` updates (Adam and Polyak steps
between them), of the first update's gradients and of the final weights; then ms per update
(loss, backward, fused Adam, Polyak; the same batch every time) eager and replayed. Exits 1 if
the first update's loss or gradients differ by more than 1e-3 (TF32 convolutions are allowed to
differ in the last bits).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time

import torch

from visual_iq.train.gpu.capture import UpdateLoss
from visual_iq.env.envs import EnvSettings, num_actions
from visual_iq.train.config import Data
from visual_iq.train.module import IQLearn
from visual_iq.algo.networks import build_q_network, polyak_update
from visual_iq.algo.objectives import make_objective

CASES = {
    "iq offline": dict(method="iq", online=False, alpha=0.01),
    "iq official online": dict(method="iq", online=True, alpha=0.001, next_value="online"),
    "sqil online": dict(method="sqil", online=True, alpha=0.001, next_value="online"),
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@torch.no_grad()
def relative(a: torch.Tensor, b: torch.Tensor) -> float:
    """Largest difference of ``a`` from ``b``, relative to ``b``'s largest value."""
    return float((a.float() - b.float()).abs().max() / b.float().abs().max().clamp_min(1e-12))


def check_arguments(description: str, updates: int) -> argparse.ArgumentParser:
    """The options of every device check: --updates, --batch-size, --json, --device (``cpu``: a dry run)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--updates", type=int, default=updates)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", default=None)
    parser.add_argument("--device", default="cuda")
    return parser


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (dry run: eager vs eager)"


def write_rows(path: str | None, name: str, rows: list[dict]) -> None:
    """The check's rows as JSON, with the device and torch version, if ``path``."""
    if path:
        with open(path, "w") as file:
            json.dump({"device": name, "torch": torch.__version__, "rows": rows}, file, indent=2)


def _batches(count: int, batch_size: int, online: bool, device: torch.device) -> list[dict[str, torch.Tensor]]:
    data = Data(demos="demos/pong", num_demos=2, batch_size=batch_size)
    source = IQLearn(env=EnvSettings("Pong"), data=data).build_batch_source(device)
    batches = [source.sample() for _ in range(count)]
    if online:
        for batch in batches:
            batch["is_expert"] = torch.arange(len(batch["actions"]), device=device) < batch_size // 2
    return batches


def check(case: str, network: str, batch_size: int, updates: int, timed: int, device: torch.device) -> dict:
    settings = CASES[case]
    objective = make_objective(gamma=0.99, **settings)
    torch.manual_seed(0)
    nets = [build_q_network(network, num_actions(EnvSettings("Pong"))).to(device)]
    nets.append(copy.deepcopy(nets[0]))
    targets = [copy.deepcopy(net).requires_grad_(False) for net in nets]
    graphs = device.type == "cuda"
    losses = [UpdateLoss(objective, nets[i], targets[i], capture=graphs and i == 1, strict=True) for i in range(2)]
    optimizers = [torch.optim.Adam(net.parameters(), lr=1e-4, fused=True) for net in nets]
    batches = _batches(updates, batch_size, settings["online"], device)

    def update(i: int, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        optimizers[i].zero_grad(set_to_none=True)
        loss = losses[i](batch)
        loss.backward()
        optimizers[i].step()
        polyak_update(targets[i], nets[i], 0.005)
        return loss.detach().clone()

    loss_diffs, grad_diff = [], 0.0
    for step, batch in enumerate(batches):
        eager = update(0, {key: value.clone() for key, value in batch.items()})
        replayed = update(1, batch)
        loss_diffs.append(relative(replayed, eager))
        if step == 0:
            grad_diff = max(relative(b.grad, a.grad) for a, b in zip(nets[0].parameters(), nets[1].parameters()))
    weight_diff = max(relative(b, a) for a, b in zip(nets[0].parameters(), nets[1].parameters()))

    fixed = batches[-1]
    timings = {}
    for i, name in ((0, "eager_ms"), (1, "graphs_ms")):
        for _ in range(10):
            update(i, fixed)
        _sync(device)
        started = time.perf_counter()
        for _ in range(timed):
            update(i, fixed)
        _sync(device)
        timings[name] = 1000.0 * (time.perf_counter() - started) / timed
    return {"case": case, "network": network, "batch_rows": len(fixed["actions"]), "captured": losses[1].captured,
            "first_loss_rel_diff": loss_diffs[0], "max_loss_rel_diff": max(loss_diffs),
            "first_grad_rel_diff": grad_diff, "final_weight_rel_diff": weight_diff, **timings}


def main() -> int:
    parser = check_arguments(__doc__.splitlines()[0], updates=20)
    parser.add_argument("--timed", type=int, default=300)
    args = parser.parse_args()
    device = torch.device(args.device)
    name = device_name(device)
    print(f"CUDA graphs vs eager on {name}, torch {torch.__version__}, "
          f"batch {args.batch_size} rows (online: half expert, half policy)")
    print("| objective | network | first loss | max loss (all updates) | first grads | final weights "
          "| eager ms/update | graphs ms/update | speed-up |")
    print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    rows, ok = [], True
    for network in ("nature", "small"):
        for case in CASES:
            row = check(case, network, args.batch_size, args.updates, args.timed, device)
            rows.append(row)
            ok &= row["first_loss_rel_diff"] < 1e-3 and row["first_grad_rel_diff"] < 1e-3
            print(f"| {case} | {network} | {row['first_loss_rel_diff']:.1e} | {row['max_loss_rel_diff']:.1e} "
                  f"| {row['first_grad_rel_diff']:.1e} | {row['final_weight_rel_diff']:.1e} | {row['eager_ms']:.2f} "
                  f"| {row['graphs_ms']:.2f} | {row['eager_ms'] / row['graphs_ms']:.1f}x |", flush=True)
    print("graphs give the eager update" if ok else "MISMATCH: graphs differ from the eager update")
    write_rows(args.json, name, rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
