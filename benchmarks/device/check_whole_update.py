"""On a GPU: does the whole update replayed from one CUDA graph do the update it should?

    python benchmarks/device/check_whole_update.py [--updates 12] [--batch-size 64] [--json FILE]
    (--device cpu: a dry run of the script, eager against eager)

`visual_iq.train.gpu.whole_update.WholeUpdate` (offline IQ on 2 Pong demos, sampled on the GPU; and online
IQ with the ``value`` variant, whose batches also hold policy rows from 4 Pong envs that take a
step every 4 updates, between the replays) runs
``--updates`` updates: the first `WARMUP_UPDATES` eagerly, then one recorded as a graph, then
replays. Before each, a shadow copy takes the networks' and Adam's state; after it, the shadow
does the same update eagerly on the batch the update sampled (the graph's static batch) and the
two are compared: the loss, the online weights after Adam, the target weights after the Polyak
step. Also checked: each replay draws a new batch (the sampler's generator advances in the
graph), and a learning rate set to 0 in place (as `visual_iq.train.schedule.LearningRateDrop` does)
leaves the weights as they were. TF32 is off and cuDNN deterministic here, so that both sides
compute alike. Exits 1 on any failure: a loss or target differing by more than 1e-3 (relative),
or more than 0.1 % of the online weights differing by more than 1e-3 of their tensor's largest
(Adam's first steps move a weight whose gradient is ~0 by ±lr whatever its size, so a last-bit
difference can flip a few of them).
"""

from __future__ import annotations

import copy
import sys

import torch
from check_capture import check_arguments, device_name, relative, write_rows  # beside this script

from visual_iq.train.gpu.capture import capture_blocker
from visual_iq.train.collector import Collector
from visual_iq.env.envs import EnvSettings
from visual_iq.train.config import Data, Objective, Online, Speed
from visual_iq.train.module import IQLearn
from visual_iq.algo.networks import polyak_update
from visual_iq.train.rollout import uniform_policy
from visual_iq.train.gpu.whole_update import WARMUP_UPDATES


def _max_relative(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(relative(x, y) for x, y in zip(a.parameters(), b.parameters()))


@torch.no_grad()
def _share_differing(a: torch.nn.Module, b: torch.nn.Module) -> float:
    """Share of the weights that differ by more than 1e-3 of their tensor's largest."""
    differing = sum(int(((x - y).abs() > 1e-3 * y.abs().max()).sum()) for x, y in zip(a.parameters(), b.parameters()))
    return differing / sum(p.numel() for p in b.parameters())


def check(network: str, batch_size: int, updates: int, device: torch.device, online: bool = False) -> dict:
    torch.manual_seed(0)
    acting = dict(objective=Objective(variant="value"),
                  online=Online(enabled=True, num_envs=4, env_steps_per_update=0.25)) if online else {}
    model = IQLearn(env=EnvSettings("Pong"), data=Data(demos="demos/pong", num_demos=2, batch_size=batch_size),
                    network=network, speed=Speed(whole_update=True), **acting).to(device)
    model.batches = model.build_batch_source(device)
    if online:
        assert model.batches.policy is not None
        model.collector = Collector(model.settings, 4, model.batches.policy, seed=0)
        model.collector.collect(uniform_policy(model.q_net.num_actions, seed=0), 100)
    whole = model.whole_update
    assert whole is not None
    graphs = device.type == "cuda"
    whole.configure(graphs, capture_blocker(device, bf16=False, grad_penalty=0.0, world_size=1), model.batches.generator)
    whole.optimizer(1e-4)
    tau = model.hparams.target_tau

    loss_diffs, weight_diffs, weight_shares, target_diffs, new_batch = [], [], [], [], []
    previous = None
    for update in range(updates):
        shadow_q, shadow_target = copy.deepcopy(model.q_net), copy.deepcopy(model.target_net)
        shadow_adam = torch.optim.Adam(shadow_q.parameters(), lr=1e-4, fused=True)
        assert whole.adam is not None
        if whole.adam.state:
            shadow_adam.load_state_dict(copy.deepcopy(whole.adam.state_dict()))
        loss = whole(update).clone()
        batch = {key: value.clone() for key, value in whole.last_batch.items()}
        shadow_adam.zero_grad(set_to_none=True)
        shadow_loss, _, _ = model.objective(shadow_q, shadow_target, batch, with_metrics=False)
        shadow_loss.backward()
        shadow_adam.step()
        polyak_update(shadow_target, shadow_q, tau)
        loss_diffs.append(relative(loss, shadow_loss.detach()))
        weight_diffs.append(_max_relative(model.q_net, shadow_q))
        weight_shares.append(_share_differing(model.q_net, shadow_q))
        target_diffs.append(_max_relative(model.target_net, shadow_target))
        if previous is not None:
            new_batch.append(not torch.equal(previous, batch["observations"]))
        previous = batch["observations"]

    assert whole.adam is not None
    before = [p.detach().clone() for p in model.q_net.parameters()]
    rate = whole.adam.param_groups[0]["lr"]
    if isinstance(rate, torch.Tensor):
        rate.fill_(0.0)
    else:
        whole.adam.param_groups[0]["lr"] = 0.0
    whole(updates)
    frozen = all(torch.equal(a, b) for a, b in zip(before, model.q_net.parameters()))
    if model.collector is not None:
        model.collector.close()
    return {"network": network, "online": online, "captured": whole.captured, "updates": updates,
            "max_loss_rel_diff": max(loss_diffs), "max_weight_rel_diff": max(weight_diffs),
            "max_share_of_weights_differing": max(weight_shares),
            "max_target_rel_diff": max(target_diffs), "every_update_new_batch": all(new_batch),
            "lr_zero_leaves_weights": frozen}


def main() -> int:
    args = check_arguments(__doc__.splitlines()[0], updates=12).parse_args()
    device = torch.device(args.device)
    name = device_name(device)
    print(f"whole update from one CUDA graph vs the same update eagerly on {name}, torch {torch.__version__}, "
          f"batch {args.batch_size}, {args.updates} updates ({WARMUP_UPDATES} eager warm-up, then recorded)")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = True, False
    print("| network | online | recorded | max loss diff | max weight diff | weights differing | max target diff "
          "| new batch every update | lr 0 leaves weights |")
    print("|---|---|---|---:|---:|---:|---:|---|---|")
    rows, ok = [], True
    for network, online in (("nature", False), ("small", False), ("nature", True)):
        row = check(network, args.batch_size, args.updates, device, online)
        rows.append(row)
        ok &= (row["captured"] == (device.type == "cuda") and row["max_loss_rel_diff"] < 1e-3
               and row["max_share_of_weights_differing"] < 1e-3 and row["max_target_rel_diff"] < 1e-3
               and row["every_update_new_batch"] and row["lr_zero_leaves_weights"])
        print(f"| {network} | {online} | {row['captured']} | {row['max_loss_rel_diff']:.1e} | {row['max_weight_rel_diff']:.1e} "
              f"| {row['max_share_of_weights_differing']:.1e} | {row['max_target_rel_diff']:.1e} "
              f"| {row['every_update_new_batch']} | {row['lr_zero_leaves_weights']} |",
              flush=True)
    print("the recorded whole update is the eager one" if ok else "MISMATCH: the whole update is wrong")
    write_rows(args.json, name, rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
