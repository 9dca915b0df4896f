"""The target network: the Polyak blend's formula, which network V(s') comes from, and the update inside fit."""

import lightning as L
import pytest
import torch

from conftest import train_catch
from visual_iq.algo.networks import build_q_network, polyak_update
from visual_iq.algo.objectives import IQObjective, SQILObjective


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return build_q_network("small", 3)


def _batch(rows: int = 8) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {"observations": torch.randint(0, 256, (rows, 4, 84, 84), dtype=torch.uint8, generator=generator),
            "next_observations": torch.randint(0, 256, (rows, 4, 84, 84), dtype=torch.uint8, generator=generator),
            "actions": torch.randint(0, 3, (rows,), generator=generator),
            "terminated": torch.zeros(rows, dtype=torch.bool),
            "is_expert": torch.arange(rows) < rows // 2}


def test_polyak_update_blends_target_towards_online_by_tau():
    target, online = _net(0), _net(1)
    before = [p.clone() for p in target.parameters()]
    polyak_update(target, online, 0.3)
    for old, new, towards in zip(before, target.parameters(), online.parameters()):
        assert torch.allclose(new, 0.7 * old + 0.3 * towards, atol=1e-6)
    polyak_update(target, online, 1.0)  # a hard copy
    assert all(torch.equal(a, b) for a, b in zip(target.parameters(), online.parameters()))


@pytest.mark.parametrize("objective", [IQObjective(alpha=0.5, gamma=0.9, next_value="target"),
                                       SQILObjective(alpha=0.5, gamma=0.9, next_value="target")],
                         ids=["iq", "sqil"])
def test_v_of_the_next_state_comes_from_the_target_network_when_asked(objective):
    online, target, other = _net(0), _net(1), _net(2)
    batch = _batch()
    loss, _, _ = objective(online, target, batch, with_metrics=False)
    # the same online network with another target: another loss; online and target swapped: another loss
    assert not torch.isclose(loss, objective(online, other, batch, with_metrics=False)[0])
    assert not torch.isclose(loss, objective(target, online, batch, with_metrics=False)[0])
    loss.backward()
    assert all(p.grad is None for p in target.parameters())  # V(s') from the target carries no gradient


def test_v_of_the_next_state_comes_from_the_online_network_when_asked():
    objective = IQObjective(alpha=0.5, gamma=0.9, next_value="online")
    online, batch = _net(0), _batch()
    losses = [objective(online, target, batch, with_metrics=False)[0] for target in (_net(1), _net(2))]
    assert torch.equal(losses[0], losses[1])  # the target network plays no part


class _TargetWatch(L.Callback):
    """The target network before the first update, and both networks after it (seen before the second)."""

    def on_train_batch_start(self, trainer, module, batch, batch_idx) -> None:
        target = [p.detach().clone() for p in module.target_net.parameters()]
        if trainer.global_step == 0:
            self.before = target
        elif trainer.global_step == 1:
            self.after, self.online = target, [p.detach().clone() for p in module.q_net.parameters()]


def test_fit_moves_the_target_network_towards_the_updated_online_one(tmp_path):
    watch = _TargetWatch()
    train_catch(tmp_path, 2, callbacks=[watch], target_tau=0.25, eval_episodes=1)
    assert any(not torch.equal(a, b) for a, b in zip(watch.before, watch.online))  # the update moved the network
    for before, after, online in zip(watch.before, watch.after, watch.online):
        assert torch.allclose(after, 0.75 * before + 0.25 * online, atol=1e-6)
