"""The update loss can be recorded as a CUDA graph: checked on the CPU by what it asks of the host.

A CUDA graph cannot contain a read back to the host (``.item()``, ``bool(tensor)``) or an op whose
output shape depends on the data (boolean indexing runs ``nonzero``). Every aten op the loss runs
is recorded here, so these tests fail on such an op without a GPU. The recording itself and its
speed are checked on a GPU by ``benchmarks/device/check_capture.py``.
"""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import CATCH_DEMOS, iq_learn
from torch.utils._python_dispatch import TorchDispatchMode

from visual_iq.train.gpu.capture import UpdateLoss, capture_blocker
from visual_iq.errors import ConfigError
from visual_iq.train.module import ENDLESS_STREAM_TRAINER_FLAGS
from visual_iq.algo.networks import build_q_network
from visual_iq.algo.objectives import make_objective

HOST_READS = {"_local_scalar_dense", "nonzero", "masked_select", "item"}


class _OpNames(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def _batch(rows: int = 8, expert_rows: int = 4, actions: int = 3) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    frames = lambda: torch.randint(0, 256, (rows, 4, 84, 84), dtype=torch.uint8, generator=generator)  # noqa: E731
    return {"observations": frames(), "next_observations": frames(), "initial_observations": frames(),
            "actions": torch.randint(0, actions, (rows,), generator=generator),
            "terminated": torch.arange(rows) % 3 == 0, "is_expert": torch.arange(rows) < expert_rows}


OBJECTIVES = {
    "iq offline": dict(method="iq", online=False, variant="value_expert"),
    "iq official online": dict(method="iq", online=True, variant="value_expert", next_value="online"),
    "iq value online": dict(method="iq", online=True, variant="value"),
    "iq v0": dict(method="iq", online=False, variant="v0"),
    "sqil": dict(method="sqil", online=True),
    "bc": dict(method="bc", online=False),
}


def _ops(settings: dict, with_metrics: bool, expert_rows: int = 4) -> set[str]:
    objective = make_objective(alpha=0.01, gamma=0.99, **settings)
    q_net = build_q_network("small", 3)
    mode = _OpNames()
    with mode:
        loss, _, _ = objective(q_net, q_net, _batch(expert_rows=expert_rows), with_metrics=with_metrics)
        loss.backward()
    return mode.names


@pytest.mark.parametrize("name", OBJECTIVES)
def test_the_update_loss_reads_nothing_back_to_the_host(name):
    assert not _ops(OBJECTIVES[name], with_metrics=False) & HOST_READS


def test_the_op_recorder_sees_host_reads():
    # The metrics path asks whether policy rows exist (a host read): the recorder must catch it,
    # or the test above could not fail.
    assert _ops(OBJECTIVES["iq value online"], with_metrics=True) & HOST_READS


@pytest.mark.parametrize("name", OBJECTIVES)
def test_the_loss_without_metrics_is_the_same_loss(name):
    objective = make_objective(alpha=0.01, gamma=0.99, **OBJECTIVES[name])
    q_net = build_q_network("small", 3)
    batch = _batch()
    with_metrics, terms, _ = objective(q_net, q_net, batch)
    without, none, _ = objective(q_net, q_net, batch, with_metrics=False)
    assert terms and not none
    assert torch.equal(with_metrics, without)
    assert torch.equal(UpdateLoss(objective, q_net, q_net)(batch), without)  # eager: capture off


def test_capture_is_only_where_it_can_work():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert capture_blocker(cuda, bf16=False, grad_penalty=0.0, world_size=1) is None
    assert "CUDA" in capture_blocker(cpu, bf16=False, grad_penalty=0.0, world_size=1)
    assert "bf16" in capture_blocker(cuda, bf16=True, grad_penalty=0.0, world_size=1)
    assert "penalty" in capture_blocker(cuda, bf16=False, grad_penalty=1.0, world_size=1)
    assert "DDP" in capture_blocker(cuda, bf16=False, grad_penalty=0.0, world_size=2)
    update_loss = UpdateLoss(None, None, None)  # type: ignore[arg-type]
    update_loss.configure(None, "no GPU")
    assert not update_loss.capture and not update_loss.strict
    update_loss.configure(None, None)
    assert update_loss.capture and not update_loss.strict
    update_loss.configure(False, None)
    assert not update_loss.capture


def test_capture_true_on_a_cpu_is_one_clear_error(tmp_path):
    model = iq_learn(game="visual_iq/Catch-v0", demos=CATCH_DEMOS, network="small", batch_size=8, capture=True,
                    eval_video=False)
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path,
                        accelerator="cpu")
    with pytest.raises(ConfigError, match="capture: true is not possible here: CUDA graphs need a CUDA device"):
        trainer.fit(model)
