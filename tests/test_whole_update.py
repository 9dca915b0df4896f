"""The whole update inside the training step (``whole_update``), checked eagerly on the CPU.

Run eagerly it must train exactly as Lightning's automatic optimization does with the DataLoader's
batches (same sampler, same updates, same order), with one update or several per training step,
and a resumed run must go on as if it had never stopped. The CUDA-graph recording itself needs a
GPU: ``benchmarks/device/check_whole_update.py``; here the recorded part is checked for reads
back to the host, which a graph cannot hold.
"""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch
from conftest import CATCH_DEMOS, iq_learn
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from test_capture import HOST_READS, _OpNames

from visual_iq.train.collector import Collector
from visual_iq.errors import ConfigError
from visual_iq.train.module import ENDLESS_STREAM_TRAINER_FLAGS, IQLearn
from visual_iq.train.rollout import uniform_policy
from visual_iq.train.schedule import LearningRateDrop
from visual_iq.train.gpu.whole_update import StepInClosure, WholeUpdate


class _Validations(Callback):
    """The update counts at which validation ran."""

    def __init__(self) -> None:
        self.at: list[int] = []

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.at.append(trainer.global_step)


def _fit(root: Path, max_steps: int, *, val_every: int = 20, ckpt_path: str | None = None, logger=False,
         callbacks=(), **model_args) -> IQLearn:
    L.seed_everything(0)
    settings = {"network": "small", "lr": 3e-4, "batch_size": 16, "eval_episodes": 2, "eval_video": False,
                "eval_reward_correlation": False, "device_replay": True, "seed": 0, **model_args}
    model = iq_learn(game="visual_iq/Catch-v0", demos=CATCH_DEMOS, **settings)
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=max_steps, val_check_interval=val_every,
                        log_every_n_steps=20, logger=logger,
                        enable_checkpointing=ckpt_path is not None or logger is not False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                        callbacks=list(callbacks))
    trainer.fit(model, ckpt_path=ckpt_path if ckpt_path and Path(ckpt_path).exists() else None)
    assert trainer.global_step == max_steps
    return model


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_whole_update_trains_exactly_like_lightnings_loop_with_one_or_several_updates_per_step(tmp_path):
    automatic = _fit(tmp_path / "a", 40)
    whole = _fit(tmp_path / "w", 40, whole_update=True)
    several = _fit(tmp_path / "k", 40, whole_update=True, updates_per_step=4)
    fresh = iq_learn(game="visual_iq/Catch-v0", demos=CATCH_DEMOS, network="small")
    assert not _same_weights(automatic.q_net, fresh.q_net)  # it learned, and the comparisons can fail
    for other in (whole, several):
        assert _same_weights(automatic.q_net, other.q_net) and _same_weights(automatic.target_net, other.target_net)


def test_online_several_updates_per_step_act_and_learn_exactly_as_one_per_step(tmp_path):
    online = dict(online=True, variant="value", num_envs=2, learning_starts=20, buffer_capacity=200,
                  env_steps_per_update=0.25, whole_update=True)
    one = _fit(tmp_path / "1", 40, **online)
    several = _fit(tmp_path / "4", 40, updates_per_step=4, **online)
    assert one.batches.policy.written == several.batches.policy.written == 1 + 10 + 10  # reset, warm-up, 1 per 4 updates
    assert _same_weights(one.q_net, several.q_net)


def test_several_updates_per_step_keep_counting_updates_for_validation_logging_and_the_end(tmp_path):
    validations = _Validations()
    logger = TensorBoardLogger(tmp_path, name="k")
    _fit(tmp_path, 42, whole_update=True, updates_per_step=4, logger=logger, callbacks=[validations])
    assert validations.at == [20, 40]  # every 20 updates (as with one per step: none at the end); _fit checked 42
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    assert [e.step for e in events.Scalars("train/loss")] == [20, 40]  # every 20 updates
    eval_steps = [e.step for e in events.Scalars("eval/return_mean")]
    eval_updates = [e.value for e in events.Scalars("eval/updates")]
    assert eval_updates == [20.0, 40.0] and eval_steps == [19, 39]  # as with one update per step


def test_resumed_whole_update_run_goes_on_as_if_it_never_stopped(tmp_path):
    straight = _fit(tmp_path / "s", 40, whole_update=True, updates_per_step=4, lr_drop_at=20, lr_drop_to=1e-4)
    logger = TensorBoardLogger(tmp_path, name="r")
    _fit(tmp_path / "r", 20, whole_update=True, updates_per_step=4, lr_drop_at=20, lr_drop_to=1e-4, logger=logger)
    last = Path(logger.log_dir) / "checkpoints" / "last.ckpt"
    assert last.exists()
    resumed = _fit(tmp_path / "r", 40, whole_update=True, updates_per_step=4, lr_drop_at=20, lr_drop_to=1e-4,
                   ckpt_path=str(last))
    assert _same_weights(straight.q_net, resumed.q_net)
    assert resumed.trainer.optimizers[0].param_groups[0]["lr"] == 1e-4


@pytest.mark.parametrize("first, then", [({}, dict(whole_update=True, updates_per_step=4)),
                                         (dict(whole_update=True, updates_per_step=4), {})],
                         ids=["switched on", "switched off"])
def test_a_run_resumed_with_whole_update_switched_goes_on_counting_and_learning(tmp_path, first, then):
    straight = _fit(tmp_path / "s", 40)
    logger = TensorBoardLogger(tmp_path, name="first")
    _fit(tmp_path / "first", 20, logger=logger, **first)
    last = Path(logger.log_dir) / "checkpoints" / "last.ckpt"
    validations = _Validations()
    resumed = _fit(tmp_path / "then", 40, ckpt_path=str(last), callbacks=[validations], **then)
    assert validations.at == [40]  # counted on from 20 (from 0 it would have validated at 20)
    # From the DataLoader's path the sampler had drawn one batch ahead (Lightning fetches the next
    # batch before the step): only the other way round are the weights exactly the straight run's.
    if first:
        assert _same_weights(straight.q_net, resumed.q_net)


@pytest.mark.parametrize("settings, message", [
    (dict(whole_update=True, updates_per_step=3),
     "trainer.val_check_interval=20 is not a whole multiple of updates_per_step=3"),
    (dict(whole_update=True, updates_per_step=4, snapshot_every=10), "snapshot_every=10 is not a whole multiple"),
    (dict(updates_per_step=4), "updates_per_step=4"),
])
def test_settings_that_cannot_work_with_several_updates_per_step_are_one_clear_error(tmp_path, settings, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        _fit(tmp_path, 40, **settings)


def test_whole_update_under_ddp_is_one_clear_error():
    model = iq_learn(game="visual_iq/Catch-v0", demos=CATCH_DEMOS, network="small", whole_update=True)
    assert model.whole_update is not None
    with pytest.raises(ConfigError, match="whole_update runs in one process"):
        model.whole_update.configure(None, None, None, world_size=2)


@pytest.mark.parametrize("online", [False, True], ids=["offline", "online, sampling the policy replay too"])
def test_the_recorded_part_of_the_update_reads_nothing_back_to_the_host(tmp_path, catch_settings, online):
    model = iq_learn(game="visual_iq/Catch-v0", demos=CATCH_DEMOS, network="small", batch_size=8, num_envs=2,
                    whole_update=True, device_replay=True, online=online, variant="value" if online else "value_expert")
    model.batches = model.build_batch_source(torch.device("cpu"))
    if online:
        collector = Collector(catch_settings, 2, model.batches.policy)
        collector.collect(uniform_policy(3, seed=0), 30)
        model.batches.sync()  # as before every update, outside the graph
    whole = model.whole_update
    assert isinstance(whole, WholeUpdate)
    whole.optimizer(1e-4)
    whole(0)  # Adam's state exists before recording, as after the warm-up updates
    mode = _OpNames()
    with mode:
        whole._learn()
    assert not mode.names & HOST_READS, f"ops that read back to the host: {mode.names & HOST_READS}"
    assert not online or (~whole.last_batch["is_expert"]).sum() == 8  # the policy rows were sampled


def test_a_learning_rate_held_as_a_tensor_is_filled_in_place_and_saved_as_a_number():
    adam = torch.optim.Adam([torch.nn.Parameter(torch.zeros(3))], lr=1e-3)
    rate = torch.tensor(1e-3)
    adam.param_groups[0]["lr"] = rate

    class _Trainer:
        optimizers = [StepInClosure(adam)]
        global_step = 5
        log_every_n_steps = 1000

    LearningRateDrop(1e-3, 5, 2e-5).on_train_batch_start(_Trainer(), None, None, 0)
    assert adam.param_groups[0]["lr"] is rate and rate.item() == pytest.approx(2e-5)
    saved = StepInClosure(adam).state_dict()["param_groups"][0]["lr"]
    assert isinstance(saved, float) and saved == pytest.approx(2e-5)
    assert adam.param_groups[0]["lr"] is rate
