"""Training options that change the update: each one works through the module and does what it says."""

import lightning as L
import numpy as np
import pytest
import torch

from conftest import CATCH_DEMOS, iq_learn

from visual_iq.algo.agent import load_agent
from visual_iq.data.batches import BatchSource
from visual_iq.data.buffer import FrameReplayBuffer
from visual_iq.train.collector import env_steps_before_update
from visual_iq.data.demos import load_episodes
from visual_iq.errors import TrainingDiverged
from visual_iq.algo.losses import iq_loss, soft_value
from visual_iq.train.module import ENDLESS_STREAM_TRAINER_FLAGS
from visual_iq.algo.networks import build_q_network, resolve_precision
from visual_iq.algo.objectives import BCObjective, IQObjective, SQILObjective


class _Watch(L.Callback):
    """Records, at every batch end, the loss, the precision flag and whether the target network changed."""

    def __init__(self) -> None:
        self.bf16, self.target_changed, self.losses = [], [], []
        self.previous = None

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        target = torch.cat([p.flatten() for p in module.target_net.parameters()]).clone()
        self.target_changed.append(self.previous is not None and not torch.equal(target, self.previous))
        self.previous = target
        self.bf16.append(module.q_net.bf16_trunk)
        self.losses.append(float(outputs["loss"]))


ONLINE = {"online": True, "variant": "value", "num_envs": 2, "learning_starts": 64, "buffer_capacity": 300}


@pytest.mark.parametrize("options", [
    {"grad_penalty": 1.0, **ONLINE},
    {"augment_shift": 4},
    {"variant": "v0"},
    {"precision": "bf16"},
    {"target_update_interval": 3},
    {"stack_size": 2},
], ids=["grad_penalty", "augment_shift", "v0", "bf16", "target_update_interval", "stack_size"])
def test_short_fit_with_option(train, options):
    watch = _Watch()
    model = train(12, callbacks=[watch], eval_episodes=2, **options)
    assert len(watch.losses) == 12 and np.all(np.isfinite(watch.losses))
    # `auto` (the default) runs the bf16 trunk only on a CPU with native bf16, like this one may be.
    expected_bf16 = resolve_precision(options.get("precision", "auto"), "cpu") == "bf16"
    assert all(flag == expected_bf16 for flag in watch.bf16)
    interval = options.get("target_update_interval", 1)
    # Callbacks run before the module's own hook, so batch k sees the target after k updates; the
    # target moves once every `interval` updates.
    assert watch.target_changed[1:] == [updates % interval == 0 for updates in range(1, 12)]
    observation = np.zeros((1, model.settings.stack_size, 84, 84), np.uint8)
    assert model.agent.q_values(observation).dtype == torch.float32


class _FirstUpdate(L.Callback):
    """The first update's batch and loss."""

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
        if trainer.global_step == 1:
            self.batch = {key: value.clone() for key, value in batch.items()}
            self.loss = float(outputs["loss"])


def _first_update(train, **options) -> _FirstUpdate:
    watch = _FirstUpdate()
    train(1, callbacks=[watch], eval_episodes=1, **options)
    return watch


@pytest.mark.parametrize("option, value, default, reaches", [
    ("augment_shift", 4, 0, "batch"),  # the same transitions, shifted observations
    ("chi2_alpha", 0.05, 0.5, "loss"),  # the same batch, another χ² weight
    ("grad_penalty", 10.0, 0.0, "loss"),  # online: the same batch, a penalty added
], ids=["augment_shift", "chi2_alpha", "grad_penalty"])
def test_options_reach_the_batch_or_the_loss_inside_fit(train, option, value, default, reaches):
    extra = ONLINE if option == "grad_penalty" else {}
    plain, changed = (_first_update(train, **{option: setting}, **extra) for setting in (default, value))
    assert torch.equal(plain.batch["actions"], changed.batch["actions"])  # the same sampled transitions
    same_observations = torch.equal(plain.batch["observations"], changed.batch["observations"])
    assert same_observations == (reaches != "batch")
    if reaches == "loss":
        assert plain.loss != changed.loss


@pytest.fixture(scope="module")
def catch_buffer():
    return FrameReplayBuffer.from_episodes(load_episodes(CATCH_DEMOS, limit=4))


def test_augment_shift_moves_observations_but_not_the_sampled_transitions(catch_buffer):
    plain = BatchSource(catch_buffer, batch_size=64, seed=3).sample()
    shifted = BatchSource(catch_buffer, batch_size=64, augment_shift=4, seed=3).sample()
    assert torch.equal(plain["actions"], shifted["actions"])
    assert not torch.equal(plain["observations"], shifted["observations"])
    assert shifted["observations"].dtype == torch.uint8
    # a shift moves pixels (edges are replicated) but keeps about the ball and paddle mass
    ratio = shifted["observations"].float().sum() / plain["observations"].float().sum()
    assert 0.8 < float(ratio) < 1.2


def test_v0_variant_uses_episode_starts(catch_buffer):
    batch = BatchSource(catch_buffer, batch_size=16, initial_states=True, seed=0).sample()
    initial = batch["initial_observations"]
    assert not initial[:, :3].any() and initial[:, 3].flatten(1).any(dim=1).all()  # one real frame, zero padding
    q_net = build_q_network("small", 3)
    objective = IQObjective(alpha=0.01, gamma=0.99, variant="v0", chi2_alpha=None)
    _, metrics, _ = objective(q_net, q_net, batch)
    with torch.no_grad():
        expected = (1 - 0.99) * soft_value(q_net(initial), 0.01).mean()
    assert metrics["value_loss"] == pytest.approx(float(expected), rel=1e-5)


def test_grad_penalty_is_added_with_its_weight(catch_buffer):
    policy = FrameReplayBuffer.from_episodes(load_episodes(CATCH_DEMOS, limit=4)[2:])
    batch = BatchSource(catch_buffer, policy, batch_size=16, seed=0).sample()
    q_net = build_q_network("small", 3)
    torch.manual_seed(0)
    without, _, _ = IQObjective(alpha=0.01, gamma=0.99, variant="value")(q_net, q_net, batch)
    torch.manual_seed(0)
    loss, metrics, _ = IQObjective(alpha=0.01, gamma=0.99, variant="value", grad_penalty=10.0)(q_net, q_net, batch)
    assert metrics["grad_penalty"] > 0
    assert float(loss) == pytest.approx(float(without) + 10.0 * float(metrics["grad_penalty"]), rel=1e-5)


@pytest.mark.parametrize("rate, expected", [(1.0, [1] * 8), (4.0, [4] * 8), (0.25, [0, 0, 0, 1, 0, 0, 0, 1]),
                                            (0.5, [0, 1] * 4)])
def test_env_steps_per_update_schedules_acting(rate, expected):
    assert [env_steps_before_update(update, rate) for update in range(8)] == expected


def test_online_with_uniform_warmup_and_an_env_step_every_4_updates(train):
    model = train(8, online=True, variant="value", num_envs=2, learning_starts=300, buffer_capacity=400,
                  warmup="uniform", env_steps_per_update=0.25, eval_episodes=1)
    policy = model.batches.policy
    assert policy.written == 1 + 150 + 2  # reset, warm-up (300 / 2 envs), one step every 4th of 8 updates
    warmup_actions = policy.actions[:, 1:150].flatten()
    shares = np.bincount(warmup_actions[warmup_actions >= 0], minlength=3) / (warmup_actions >= 0).sum()
    assert shares.min() > 0.25  # uniform over Catch's 3 actions, not the untrained net's favourite


class _Refuse(torch.nn.Module):
    def forward(self, observations):
        raise AssertionError("the target network must not be used")


def test_next_value_from_the_online_network_carries_gradient(catch_buffer):
    batch = BatchSource(catch_buffer, batch_size=16, seed=0).sample()
    q_net = build_q_network("small", 3)
    loss, _, _ = IQObjective(alpha=0.01, gamma=0.99, next_value="online")(q_net, _Refuse(), batch)
    q, next_v = q_net(batch["observations"]), soft_value(q_net(batch["next_observations"]), 0.01)
    expected, _ = iq_loss(q, batch["actions"], next_v, batch["terminated"], batch["is_expert"], alpha=0.01, gamma=0.99)
    assert float(loss) == pytest.approx(float(expected), rel=1e-6)
    with_gradient = torch.autograd.grad(loss, list(q_net.parameters()))
    detached, _ = iq_loss(q, batch["actions"], next_v.detach(), batch["terminated"], batch["is_expert"],
                          alpha=0.01, gamma=0.99)
    without = torch.autograd.grad(detached, list(q_net.parameters()))
    assert not all(torch.allclose(a, b) for a, b in zip(with_gradient, without))


@pytest.mark.parametrize("objective, reads", [
    (IQObjective(0.01, 0.99, "value_expert", next_value="online"), False),  # the official Atari recipe
    (IQObjective(0.01, 0.99, "value_expert", chi2_alpha=None), False),
    (IQObjective(0.01, 0.99, "value_expert", chi2_rows="all"), True),
    (IQObjective(0.01, 0.99, "value", chi2_rows="expert"), True),
    (IQObjective(0.01, 0.99, "value"), True),
    (BCObjective(0.01), False),
    (SQILObjective(0.01, 0.99, next_value="online"), True),
])
def test_policy_rows_change_the_update_exactly_when_the_objective_says_it_reads_them(catch_buffer, objective, reads):
    """Online updates leave policy rows out where `reads_policy_rows` is false: that must not change
    the loss or the gradient (and where it is true, leaving them out must change something)."""
    torch.manual_seed(0)
    q_net = build_q_network("small", 3)
    full = BatchSource(catch_buffer, catch_buffer, batch_size=16, seed=0).sample()  # 16 expert + 16 policy rows
    expert_only = {key: value[:16] for key, value in full.items()}
    assert objective.reads_policy_rows == reads
    results = []
    for batch in (full, expert_only):
        loss, _, _ = objective(q_net, q_net, batch)
        results.append((loss.detach(), torch.autograd.grad(loss, list(q_net.parameters()))))
    (loss_full, grads_full), (loss_expert, grads_expert) = results
    same = torch.allclose(loss_full, loss_expert, rtol=1e-6, atol=1e-7) and all(
        torch.allclose(a, b, rtol=1e-5, atol=1e-8) for a, b in zip(grads_full, grads_expert))
    assert same == (not reads)


def test_online_official_recipe_updates_on_expert_rows_and_logs_policy_rows(train):
    class _Batches(L.Callback):
        def __init__(self) -> None:
            self.sizes, self.expert_only = [], []

        def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx) -> None:
            self.sizes.append(len(batch["actions"]))
            self.expert_only.append(bool(batch["is_expert"].all()))
            self.metrics = dict(trainer.callback_metrics)

    watch = _Batches()
    train(3, callbacks=[watch], online=True, variant="value_expert", next_value="online", num_envs=2,
          learning_starts=64, buffer_capacity=300, batch_size=16, eval_episodes=1)
    assert watch.sizes == [16] * 3 and all(watch.expert_only)  # no network pass over rows the loss ignores
    assert {"train/q_policy", "train/entropy_policy", "train/reward_policy"} <= set(watch.metrics)


def _online_weights_logging_every(tmp_path, log_every_n_steps: int, device_replay: bool) -> dict[str, torch.Tensor]:
    L.seed_everything(0)
    model = iq_learn(game="visual_iq/Catch-v0", demos=CATCH_DEMOS, network="small", batch_size=8, online=True,
                    variant="value_expert", num_envs=2, learning_starts=32, buffer_capacity=200, eval_episodes=1,
                    eval_video=False, device_replay=device_replay)
    assert not model.objective.reads_policy_rows  # the case where logging used to draw a batch of its own
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=12, val_check_interval=12, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=log_every_n_steps, default_root_dir=tmp_path)
    trainer.fit(model)
    return {name: value.clone() for name, value in model.q_net.state_dict().items()}


@pytest.mark.parametrize("device_replay", [False, True], ids=["host_sampler", "device_sampler"])
def test_logging_draws_nothing_from_the_training_stream(tmp_path, device_replay):
    # Online with an objective that ignores policy rows, the logged metrics come from an extra batch with
    # them: it must come from a stream of its own, or how often a run logs would change what it trains on.
    often, rarely = (_online_weights_logging_every(tmp_path / str(n), n, device_replay) for n in (1, 1000))
    assert all(torch.equal(often[name], rarely[name]) for name in often)


class _PoisonAfter(L.Callback):
    """Makes every loss from update ``update`` on NaN (as a diverging run's would be)."""

    def __init__(self, update: int) -> None:
        self.update = update

    def on_fit_start(self, trainer, module) -> None:
        update_loss = module.update_loss

        def poisoned(batch):
            loss = update_loss(batch)
            return loss * float("nan") if module.global_step >= self.update else loss

        module.update_loss = poisoned


def test_a_nan_loss_stops_training_by_the_next_logging_step(tmp_path):
    model = iq_learn(game="visual_iq/Catch-v0", demos=CATCH_DEMOS, network="small", batch_size=8, eval_episodes=1,
                    eval_video=False)
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=40, val_check_interval=40, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        log_every_n_steps=5, default_root_dir=tmp_path, callbacks=[_PoisonAfter(7)])
    with pytest.raises(TrainingDiverged, match=r"the IQ loss became nan by update 10 \(terms: "):
        trainer.fit(model)


def test_dueling_head_gives_the_level_of_q_a_stream_apart_from_the_action_gaps():
    torch.manual_seed(0)
    q_net = build_q_network("small_dueling", 4)
    observations = torch.randint(0, 256, (5, 4, 84, 84), dtype=torch.uint8)
    q = q_net(observations)
    assert q.shape == (5, 4) and q_net.num_actions == 4
    state_value = q_net.head.value(q_net.features(observations.float() / 255)).squeeze(1)
    assert torch.allclose(q.mean(dim=1), state_value, atol=1e-5)  # advantages are centred
    with torch.no_grad():  # moving the state value moves every action alike: the policy is unchanged
        q_net.head.value[-1].bias += 5.0
        shifted = q_net(observations)
    assert torch.allclose(shifted - q, torch.full_like(q, 5.0), atol=1e-4)
    assert torch.equal(shifted.argmax(dim=1), q.argmax(dim=1))


def test_a_dueling_agent_trains_and_reloads_from_its_checkpoint(tmp_path):
    model = iq_learn(game="visual_iq/Catch-v0", demos=CATCH_DEMOS, network="small_dueling", batch_size=8,
                    eval_episodes=1, eval_video=False)
    trainer = L.Trainer(**ENDLESS_STREAM_TRAINER_FLAGS, max_steps=5, limit_val_batches=0, logger=False,
                        enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(model)
    path = tmp_path / "dueling.ckpt"
    trainer.save_checkpoint(path)
    agent = load_agent(path)
    observations = torch.randint(0, 256, (3, 4, 84, 84), dtype=torch.uint8)
    model.q_net.bf16_trunk = agent.q_net.bf16_trunk  # both follow the precision setting on this CPU
    assert torch.equal(agent.q_values(observations), model.q_net(observations).detach())
