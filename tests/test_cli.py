"""`visual-iq` end to end on conf/smoke.yaml: checkpoints, TensorBoard tags, resume, errors."""

import glob
import json
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from visual_iq.cli import main
from visual_iq.data.demos import load_episodes
from visual_iq.algo.agent import load_agent
from visual_iq.errors import CheckpointError
from visual_iq.algo.networks import build_q_network
from visual_iq.train.warm_start import load_network_weights
from visual_iq.tools.curve import main as curve_main
from visual_iq.tools.export import main as export_main
from visual_iq.tools.record import main as record_main
from visual_iq.tools.reward import main as reward_main


def _fit(tmp_path, *extra):
    return main(["fit", "--config", "conf/smoke.yaml", "--trainer.logger.init_args.save_dir", str(tmp_path), *extra])


def _tags(run_dir):
    accumulator = EventAccumulator(glob.glob(f"{run_dir}/events*")[0], size_guidance={"images": 0})
    accumulator.Reload()
    return accumulator


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("smoke")
    assert _fit(tmp_path) == 0
    return tmp_path


def test_fit_writes_checkpoints_and_tensorboard(smoke_run):
    run = smoke_run / "smoke" / "version_0"
    checkpoints = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert "last.ckpt" in checkpoints and any(name.startswith("best-") for name in checkpoints)
    checkpoint = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert checkpoint["global_step"] == 60
    assert checkpoint["env_settings"]["game"] == "visual_iq/Catch-v0"
    assert "target_net.head.2.weight" in checkpoint["state_dict"]
    tags = _tags(run)
    for tag in ("train/loss", "train/reward_loss", "train/value_loss", "train/chi2_loss",
                "train/reward_expert", "train/q_expert", "train/v_expert", "train/entropy_expert",
                "train/expert_action_accuracy",
                "train/updates_per_s", "eval/return_mean", "eval/return_std",
                "eval/reward_step_pearson", "eval/reward_step_spearman"):
        assert tag in tags.Tags()["scalars"], tag
    assert "eval/video" in tags.Tags()["images"]  # add_video writes a GIF image summary


def test_resume_continues_step_count(smoke_run, tmp_path):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert _fit(tmp_path, "--trainer.max_steps", "90", "--ckpt_path", str(last)) == 0
    resumed = torch.load(tmp_path / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 90
    before = torch.load(last, weights_only=False)
    assert resumed["optimizer_states"][0]["state"][0]["step"] == before["optimizer_states"][0]["state"][0]["step"] + 30


def test_learning_rate_drops_by_update_count_even_when_resuming_a_run_saved_without_the_drop(smoke_run, tmp_path):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"  # 60 updates at the config's lr
    assert _fit(tmp_path, "--trainer.max_steps", "90", "--ckpt_path", str(last),
                "--model.optim.lr_drop_at", "60", "--model.optim.lr_drop_to", "1e-30") == 0
    before = torch.load(last, weights_only=False)
    after = torch.load(tmp_path / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert after["optimizer_states"][0]["param_groups"][0]["lr"] == 1e-30
    weights = [name for name in before["state_dict"] if name.startswith("q_net.")]
    assert all(torch.equal(before["state_dict"][n], after["state_dict"][n]) for n in weights)  # 30 updates at ~0
    lrs = {event.step: event.value for event in _tags(tmp_path / "smoke" / "version_0").Scalars("train/lr")}
    assert lrs and all(value == pytest.approx(1e-30) for value in lrs.values())


def test_online_smoke_resumes_policy_buffer(tmp_path):
    args = ["--model.online.enabled", "true", "--model.objective.variant", "value", "--model.online.num_envs", "2",
            "--model.online.learning_starts", "40", "--model.online.buffer_capacity", "500"]
    assert _fit(tmp_path / "a", *args, "--trainer.max_steps", "30", "--model.evaluation.snapshot_every", "30") == 0
    first = tmp_path / "a" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    snapshot = torch.load(first.with_name("snap-30.ckpt"), weights_only=False)
    assert "policy_buffer" not in snapshot and "optimizer_states" not in snapshot  # weights only: small
    saved = torch.load(first, weights_only=False)["policy_buffer"]
    assert saved["written"] == 1 + 20 + 30  # reset + warm-up (40 / 2 envs) + one step per update
    assert _fit(tmp_path / "b", *args, "--trainer.max_steps", "60", "--ckpt_path", str(first)) == 0
    resumed = torch.load(tmp_path / "b" / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 60
    # the resumed run kept the saved transitions and appended its own after them
    # (the envs themselves restart: one reset observation, then one step per update)
    assert resumed["policy_buffer"]["written"] == saved["written"] + 1 + 30
    assert torch.equal(resumed["policy_buffer"]["frames"][:, :51], saved["frames"][:, :51])
    assert resumed["hyper_parameters"]["online"]["explore"] == "sample"
    # how it acts may change on resume (ACTING_OPTIONS): the checkpoint's settings say what it does now
    assert _fit(tmp_path / "c", *args, "--trainer.max_steps", "70", "--ckpt_path", str(first),
                "--model.online.explore", "greedy") == 0
    greedy = torch.load(tmp_path / "c" / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert greedy["hyper_parameters"]["online"]["explore"] == "greedy"


def test_checkpoint_with_other_env_is_refused(smoke_run, tmp_path, capsys):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    code = record_main(["--source", "agent", "--ckpt", str(last), "--game", "Pong", "--out", str(tmp_path)])
    assert code == 2
    assert (f"error: checkpoint {last} was made with different env settings: "
            "game: 'visual_iq/Catch-v0' != 'Pong'") in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_record_agent_from_checkpoint(smoke_run, tmp_path):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert record_main(["--source", "agent", "--ckpt", str(last), "--episodes", "2", "--out", str(tmp_path)]) == 0
    episodes = load_episodes(tmp_path)
    assert [e.source for e in episodes] == ["agent", "agent"]
    assert episodes[0].settings.game == "visual_iq/Catch-v0" and episodes[0].extra["checkpoint"] == str(last)
    # the recorded actions are the agent's greedy actions on the recorded observations
    agent = load_agent(last)
    assert np.array_equal(agent.act(episodes[0].observations()[:-1]), episodes[0].actions)


def test_expert_labels_for_a_game_without_an_expert_is_one_clear_error(smoke_run, tmp_path, capsys):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    code = record_main(["--source", "agent", "--ckpt", str(last), "--expert-labels", "--out", str(tmp_path)])
    assert code == 2
    assert "error: no scripted expert for visual_iq/Catch-v0; experts exist for Pong, Breakout" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_missing_checkpoint_is_one_clear_error(tmp_path, capsys):
    missing = tmp_path / "nope.ckpt"
    assert record_main(["--source", "agent", "--ckpt", str(missing), "--out", str(tmp_path)]) == 2
    assert f"error: {missing}: no such checkpoint file" in capsys.readouterr().err


def test_bad_demo_directory_is_one_clear_error(tmp_path, capsys):
    code = _fit(tmp_path, "--model.data.demos", str(tmp_path / "missing"))
    assert code == 1
    assert f"visual-iq: error: {tmp_path / 'missing'}: demo directory does not exist" in capsys.readouterr().err


def test_test_command_prints_mean_and_std(smoke_run, tmp_path, capfd):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert main(["test", "--config", "conf/smoke.yaml", "--ckpt_path", str(last), "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    printed = re.search(r"visual_iq/Catch-v0: return (-?[\d.]+) ± ([\d.]+) over (\d+) episodes .*returns: (\[[^]]*\])",
                        capfd.readouterr().out)
    assert printed is not None
    returns = json.loads(printed.group(4))
    assert int(printed.group(3)) == len(returns) == 2  # conf/smoke.yaml's evaluation.episodes
    assert float(printed.group(1)) == pytest.approx(np.mean(returns), abs=0.005)
    assert float(printed.group(2)) == pytest.approx(np.std(returns), abs=0.005)


def test_agents_trained_with_other_seeds_are_tested_on_the_same_games(smoke_run, tmp_path, monkeypatch):
    import visual_iq.train.module
    evaluate, seeds = visual_iq.train.module.evaluate, []

    def recording_evaluate(*args, seed, **kwargs):
        seeds.append(seed)
        return evaluate(*args, seed=seed, **kwargs)

    monkeypatch.setattr(visual_iq.train.module, "evaluate", recording_evaluate)
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    other_seed = torch.load(last, weights_only=False)
    other_seed["hyper_parameters"]["seed"] += 3
    torch.save(other_seed, tmp_path / "seed3.ckpt")
    for checkpoint in (last, tmp_path / "seed3.ckpt"):
        assert main(["test", "--config", "conf/smoke.yaml", "--ckpt_path", str(checkpoint), "--trainer.logger", "false",
                     "--trainer.default_root_dir", str(tmp_path)]) == 0
    assert len(seeds) == 2 and seeds[0] == seeds[1]


def test_exported_agent_is_smaller_and_tests_records_but_does_not_resume(smoke_run, tmp_path, capfd):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    exported = tmp_path / "agent.ckpt"
    assert export_main([str(last), str(exported)]) == 0
    assert exported.stat().st_size < last.stat().st_size / 3
    original, small = load_agent(last), load_agent(exported)
    observations = np.random.default_rng(0).integers(0, 255, (5, 4, 84, 84), dtype=np.uint8)
    assert np.array_equal(original.act(observations), small.act(observations))
    assert main(["test", "--config", "conf/smoke.yaml", "--ckpt_path", str(exported), "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    assert "visual_iq/Catch-v0: return" in capfd.readouterr().out
    assert record_main(["--source", "agent", "--ckpt", str(exported), "--episodes", "1",
                        "--out", str(tmp_path / "rec")]) == 0
    assert _fit(tmp_path / "resume", "--ckpt_path", str(exported)) == 1
    assert "not resumed" in capfd.readouterr().err


def _network(checkpoint_path, prefix="q_net."):
    state = torch.load(checkpoint_path, weights_only=False)["state_dict"]
    return {key: value for key, value in state.items() if key.startswith(prefix)}


def test_warm_start_takes_the_network_and_the_configs_settings_with_a_fresh_optimizer(smoke_run, tmp_path):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    exported = tmp_path / "agent.ckpt"
    assert export_main([str(last), str(exported)]) == 0
    for name, source in (("full", last), ("exported", exported)):
        # a vanishing learning rate: Adam leaves the weights where the warm start put them
        assert _fit(tmp_path / name, "--warm_start", str(source), "--model.optim.lr", "1e-30", "--model.objective.alpha", "0.02",
                    "--trainer.max_steps", "5", "--trainer.val_check_interval", "5") == 0
        warm = tmp_path / name / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
        saved = torch.load(warm, weights_only=False)
        assert saved["global_step"] == 5 and saved["optimizer_states"][0]["state"][0]["step"] == 5
        assert saved["hyper_parameters"]["objective"]["alpha"] == 0.02  # the config's settings, not the checkpoint's
        started, trained = _network(warm), _network(last)
        assert started.keys() == trained.keys()
        assert all(torch.allclose(started[key], trained[key], rtol=0, atol=1e-12) for key in trained)
    # an exported agent's one network seeds the target network too
    target = _network(tmp_path / "exported" / "smoke" / "version_0" / "checkpoints" / "last.ckpt", "target_net.")
    online = _network(last)
    assert all(torch.allclose(value, online["q_net." + key[len("target_net."):]], rtol=0, atol=1e-12)
               for key, value in target.items())


def test_snapshots_average_into_one_exported_agent(tmp_path, capsys):
    assert _fit(tmp_path, "--model.evaluation.snapshot_every", "20") == 0
    checkpoints = tmp_path / "smoke" / "version_0" / "checkpoints"
    snapshots = [checkpoints / f"snap-{step}.ckpt" for step in (20, 40, 60)]
    assert all(path.is_file() for path in snapshots)
    older = torch.load(snapshots[1], weights_only=False)  # as written before the crop settings existed
    older["env_settings"] = {k: v for k, v in older["env_settings"].items() if not k.startswith("crop_")}
    torch.save(older, snapshots[1])
    averaged = tmp_path / "averaged.ckpt"
    assert export_main([*map(str, snapshots), str(averaged)]) == 0
    assert "the average of 3 checkpoints" in capsys.readouterr().out
    saved = torch.load(averaged, weights_only=True)
    assert [entry["global_step"] for entry in saved["averaged_from"]] == [20, 40, 60]
    networks = [_network(path) for path in snapshots]
    assert not torch.equal(networks[0]["q_net.head.2.weight"], networks[2]["q_net.head.2.weight"])
    for key, value in saved["state_dict"].items():
        assert torch.allclose(value, sum(network[key] for network in networks) / 3, rtol=0, atol=1e-6), key
    load_agent(averaged)  # plays like any exported agent
    assert _fit(tmp_path / "resume", "--ckpt_path", str(snapshots[0])) == 1  # weights only
    assert "a snapshot holds only the network" in capsys.readouterr().err


def test_averaging_checkpoints_of_different_agents_is_one_clear_error(smoke_run, tmp_path, capsys):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert _fit(tmp_path, "--model.objective.alpha", "0.02", "--trainer.max_steps", "5", "--trainer.val_check_interval", "5") == 0
    other = tmp_path / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert export_main([str(last), str(other), str(tmp_path / "out.ckpt")]) == 2
    assert f"error: {other} cannot be averaged with {last}: not the same agent (alpha 0.02 vs 0.01)" \
        in capsys.readouterr().err
    assert not (tmp_path / "out.ckpt").exists()
    assert export_main(["--as-trained", str(last), str(tmp_path / "out.ckpt")]) == 2
    assert "saved without weight averaging" in capsys.readouterr().err


def test_lightning_ema_weight_averaging_evaluates_saves_exports_and_resumes_the_average(tmp_path, capfd):
    ema = ["--trainer.callbacks+=EMAWeightAveraging", "--trainer.callbacks.decay=0.9"]
    assert _fit(tmp_path / "a", *ema) == 0
    last = tmp_path / "a" / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    saved = torch.load(last, weights_only=False)
    averaged, trained = _network(last), {k: v for k, v in saved["current_model_state"].items() if k.startswith("q_net.")}
    assert not torch.equal(averaged["q_net.head.2.weight"], trained["q_net.head.2.weight"])
    for flags, expected in (([], averaged), (["--as-trained"], trained)):
        exported = tmp_path / f"agent{len(flags)}.ckpt"
        assert export_main([*flags, str(last), str(exported)]) == 0
        assert all(torch.equal(value, expected[key]) for key, value in _network(exported).items())
    assert main(["test", "--config", "conf/smoke.yaml", "--ckpt_path", str(last), "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path)]) == 0
    assert "visual_iq/Catch-v0: return" in capfd.readouterr().out
    assert _fit(tmp_path / "b", *ema, "--trainer.max_steps", "90", "--ckpt_path", str(last)) == 0
    resumed = torch.load(tmp_path / "b" / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 90 and resumed["averaging_state"]["n_averaged"] == 90


def test_visual_iq_ema_keeps_the_same_average_as_lightnings_and_resumes(tmp_path):
    # visual_iq.train.averaging.EMA updates the average in one foreach op; the numbers must be Lightning's.
    assert _fit(tmp_path / "ours", "--trainer.callbacks+=EMA", "--trainer.callbacks.decay=0.9") == 0
    assert _fit(tmp_path / "lightning", "--trainer.callbacks+=EMAWeightAveraging", "--trainer.callbacks.decay=0.9") == 0
    ours, lightnings = (tmp_path / name / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
                        for name in ("ours", "lightning"))
    averaged, reference = _network(ours), _network(lightnings)
    trained = torch.load(ours, weights_only=False)["current_model_state"]
    assert not torch.equal(averaged["q_net.head.2.weight"], trained["q_net.head.2.weight"])
    for key, value in reference.items():
        torch.testing.assert_close(averaged[key], value, rtol=1e-5, atol=1e-6)
    # a run saved with Lightning's callback (conf/pong_online.yaml before 2026-11-28) resumes with ours
    assert _fit(tmp_path / "b", "--trainer.callbacks+=EMA", "--trainer.callbacks.decay=0.9",
                "--trainer.max_steps", "90", "--ckpt_path", str(lightnings)) == 0
    resumed = torch.load(tmp_path / "b" / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 90 and resumed["averaging_state"]["n_averaged"] == 90


def test_ema_decay_out_of_range_is_one_clear_error(tmp_path, capfd):
    assert _fit(tmp_path, "--trainer.callbacks+=EMA", "--trainer.callbacks.decay=1.5") == 1
    _assert_one_line_error(capfd, "EMA decay must be in [0, 1], got 1.5")


def test_warm_start_from_another_network_or_outside_fit_is_one_clear_error(smoke_run, tmp_path, capfd):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert _fit(tmp_path, "--warm_start", str(last), "--model.network", "small_dueling") == 1
    _assert_one_line_error(capfd, f"warm-start checkpoint {last} holds a 'small' network, this config builds "
                                  "'small_dueling': set --model.network small")
    assert _fit(tmp_path, "--warm_start", str(tmp_path / "missing.ckpt")) == 1
    _assert_one_line_error(capfd, "missing.ckpt: no such checkpoint file")
    assert main(["test", "--config", "conf/smoke.yaml", "--warm_start", str(last), "--trainer.logger", "false"]) == 1
    _assert_one_line_error(capfd, "--warm_start starts a fit from a checkpoint's network; for test use --ckpt_path")


def test_warm_start_weights_of_another_shape_are_one_clear_error():
    six_actions = {"q_net." + key: value for key, value in build_q_network("small", 6).state_dict().items()}
    with pytest.raises(CheckpointError, match=r"^source X: its network does not fit this config's \(size mismatch"):
        load_network_weights(build_q_network("small", 3), six_actions, "q_net.", "source X")


def test_exporting_a_non_checkpoint_is_one_clear_error(tmp_path, capsys):
    bogus = tmp_path / "bogus.ckpt"
    bogus.write_bytes(b"not a checkpoint")
    assert export_main([str(bogus), str(tmp_path / "out.ckpt")]) == 2
    assert f"error: {bogus}: not a visual-iq checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "out.ckpt").exists()


def test_module_entry_point_help():
    result = subprocess.run([sys.executable, "-m", "visual_iq", "fit", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "--model.objective.alpha" in result.stdout and "--model.objective.variant" in result.stdout


@pytest.mark.parametrize("config", sorted(glob.glob("conf/*.yaml") + glob.glob("conf/*/*.yaml")))
def test_every_shipped_config_parses(config, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", "--config", config, "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "model:" in printed and "max_steps:" in printed


@pytest.mark.parametrize("config", ["conf/experts/pong_sticky.yaml", "conf/experts/breakout.yaml"])
def test_expert_configs_train_and_evaluate(config, tmp_path):
    """A few updates of an expert's run as configured (a short warm-up, one evaluation game): the small and the
    Nature CNN, the sticky protocol and the paper's with lives (every expert config parses, above)."""
    assert main(["fit", "--config", config, "--trainer.max_steps", "3", "--trainer.val_check_interval", "3",
                 "--trainer.logger.init_args.save_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                 "--model.online.learning_starts", "64", "--model.evaluation.episodes", "1"]) == 0
    assert list(tmp_path.glob("*/version_0/checkpoints/last.ckpt"))


def test_learning_curve_from_tensorboard(smoke_run, capsys):
    run = smoke_run / "smoke" / "version_0"
    assert curve_main([str(run), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [row["step"] for row in rows] == [30, 60]  # conf/smoke.yaml: validation every 30 of 60 updates
    assert all(row["minutes"] >= 0 for row in rows)
    plot = smoke_run / "curve.png"
    assert curve_main([str(run), str(run), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    capsys.readouterr()
    assert curve_main([str(run), str(run), "--chain", "--json"]) == 0
    chained = json.loads(capsys.readouterr().out)
    assert [row["step"] for row in chained] == [30, 60, 30, 60]
    assert chained[2]["minutes"] == pytest.approx(rows[1]["minutes"] + rows[0]["minutes"])
    assert curve_main([str(smoke_run)]) == 2
    assert "no TensorBoard event files" in capsys.readouterr().err


def test_nan_loss_stops_training_with_a_clear_message(tmp_path, monkeypatch, capsys):
    import visual_iq.algo.objectives

    def nan_loss(q, *args, **kwargs):
        return q.sum() * float("nan"), {"reward_loss": torch.tensor(1.0)}

    monkeypatch.setattr(visual_iq.algo.objectives, "iq_loss", nan_loss)
    assert _fit(tmp_path) == 1
    err = capsys.readouterr().err
    assert "visual-iq: error: the IQ loss became nan by update 0 (terms: reward_loss=1)" in err


def test_reward_tool_reports_correlations_and_plots(smoke_run, tmp_path, capsys):
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    plot = tmp_path / "reward.png"
    assert reward_main(["--ckpt", str(last), "--demos", "tests/data/catch", "--episodes", "4",
                        "--plot", str(plot), "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["episodes"] == 4 and result["steps"] == 4 * 30
    # the same figures computed independently, in numpy, from the network's Q values
    agent, episodes = load_agent(last), load_episodes("tests/data/catch", limit=4)
    implicit, true, greedy = [], [], []
    for episode in episodes:
        q = agent.q_values(episode.observations()).numpy().astype(np.float64)
        greedy.append(q[:-1].argmax(1) == episode.actions)
        alpha, gamma = agent.alpha, agent.gamma
        v = alpha * np.log(np.exp((q - q.max(1, keepdims=True)) / alpha).sum(1)) + q.max(1)
        taken = q[np.arange(episode.length), episode.actions]
        implicit.append(taken - gamma * (1 - episode.terminated) * v[1:])
        true.append(episode.rewards)
    step_pearson = np.corrcoef(np.concatenate(implicit), np.concatenate(true))[0, 1]
    assert result["step_pearson"] == pytest.approx(step_pearson, abs=1e-4)
    assert np.isfinite(result["step_spearman"])
    assert result["expert_action_accuracy"] == pytest.approx(np.concatenate(greedy).mean())
    # every demo episode returns +5: a correlation with the return is undefined, and reported as such
    assert np.isnan(result["return_pearson"]) and np.isnan(result["return_spearman"])
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # a checkpoint of another game is refused with one clear error
    assert reward_main(["--ckpt", str(last), "--demos", "demos/pong", "--episodes", "1", "--no-plot"]) == 2
    assert "was made with different env settings" in capsys.readouterr().err


def test_no_checkpoints_when_checkpointing_is_disabled(tmp_path):
    assert _fit(tmp_path, "--trainer.enable_checkpointing", "false", "--trainer.max_steps", "10",
                "--trainer.default_root_dir", str(tmp_path)) == 0
    assert not list(tmp_path.rglob("*.ckpt"))


def _test_command(config, ckpt, tmp_path):
    return main(["test", "--config", config, "--ckpt_path", str(ckpt), "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path)])


def _assert_one_line_error(capfd, expected):
    err = capfd.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("visual-iq: error:")]
    assert len(lines) == 1 and expected in lines[0], err
    assert "Traceback" not in err


def test_unreadable_checkpoints_are_one_clear_error(smoke_run, tmp_path, capfd):
    random_bytes = tmp_path / "random.ckpt"
    random_bytes.write_bytes(np.random.default_rng(0).bytes(4096))
    assert _test_command("conf/smoke.yaml", random_bytes, tmp_path) == 1
    _assert_one_line_error(capfd, f"{random_bytes}: not a visual-iq checkpoint")
    truncated = tmp_path / "truncated.ckpt"
    whole = (smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt").read_bytes()
    truncated.write_bytes(whole[: len(whole) // 2])
    assert _test_command("conf/smoke.yaml", truncated, tmp_path) == 1
    _assert_one_line_error(capfd, f"{truncated}: not a visual-iq checkpoint")


def test_checkpoint_of_another_game_than_the_config_is_refused(tmp_path, capfd):
    assert _test_command("conf/breakout.yaml", "agents/pong_online_iq.ckpt", tmp_path) == 1
    _assert_one_line_error(capfd, "agents/pong_online_iq.ckpt is a Pong agent but the config trains and evaluates Breakout")


@pytest.mark.parametrize("setting, value, expected", [
    ("objective.alpha", "0", "invalid setting(s): objective.alpha=0.0"),
    ("data.batch_size", "0", "invalid setting(s): data.batch_size=0"),
    ("objective.gamma", "1", "invalid setting(s): objective.gamma=1.0"),
    ("data.num_demos", "1000", "tests/data/catch: asked for 1000 demo episodes, there are 20"),
    ("data.demos", "[tests/data/catch, tests/data/nope]", "tests/data/nope: demo directory does not exist"),
    ("objective.method", "sqil", "sqil learns from policy samples"),
    ("env.frame_skip", "2", "demos in tests/data/catch was made with different env settings: frame_skip: 4 != 2"),
    ("optim.lr_drop_at", "100", "invalid setting(s): optim.lr_drop_at=100"),  # without lr_drop_to
    ("env.crop_top", "34", "crop_top / crop_bottom are for Atari screens, not visual_iq/Catch-v0"),
])
def test_invalid_settings_are_one_clear_error(tmp_path, capfd, setting, value, expected):
    assert _fit(tmp_path, f"--model.{setting}", value) == 1
    _assert_one_line_error(capfd, expected)


def test_several_demo_directories_on_the_command_line(tmp_path, capfd):
    # a list of directories is read as one: 20 + 20 episodes, so asking for 50 names both
    assert _fit(tmp_path, "--model.data.demos", "[tests/data/catch, tests/data/catch]", "--model.data.num_demos", "50") == 1
    _assert_one_line_error(capfd, "tests/data/catch + tests/data/catch: asked for 50 demo episodes, there are 40")


def test_programming_errors_keep_their_traceback(tmp_path, monkeypatch):
    import visual_iq.algo.objectives

    def broken(*args, **kwargs):
        raise ValueError("a bug, not bad input")

    monkeypatch.setattr(visual_iq.algo.objectives, "iq_loss", broken)
    with pytest.raises(ValueError, match="a bug, not bad input"):
        _fit(tmp_path)


def test_evaluation_options_still_apply_with_a_checkpoint_and_others_are_reported(smoke_run, tmp_path, capfd):
    # Lightning takes the model's settings from the checkpoint (2 evaluation episodes, as conf/smoke.yaml);
    # the envs the agent plays in may still be chosen on the command line.
    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert main(["test", "--config", "conf/smoke.yaml", "--ckpt_path", str(last), "--trainer.logger", "false",
                 "--trainer.default_root_dir", str(tmp_path), "--model.evaluation.episodes=3", "--model.objective.alpha", "0.5"]) == 0
    captured = capfd.readouterr()
    assert "over 3 episodes" in captured.out
    steps = captured.out.split("steps: ")[1].split("]")[0].strip("[").split(", ")
    assert len(steps) == 3 and all(int(n) > 0 for n in steps)  # each test episode's length
    assert "ignored: --model.objective.alpha" in captured.err and "eval_episodes" not in captured.err.split("ignored:")[1].split("(")[0]


def test_visual_iq_runs_a_tool_by_name_and_lists_the_tools(capsys):
    from visual_iq.__main__ import TOOLS
    from visual_iq.__main__ import main as visual_iq

    assert visual_iq(["demos", "info", "tests/data/catch", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 20
    with pytest.raises(SystemExit):
        visual_iq(["--help"])
    listed = capsys.readouterr().out
    assert all(f"  {name}  " in listed or f"  {name} " in listed for name in TOOLS) and "fit" in listed


def _flattened(hyper_parameters):
    """The settings as checkpoints of earlier versions held them: one flat dict."""
    from visual_iq.train.config import GROUPS, RENAMED

    old_name = {new: old for old, new in RENAMED.items()}
    flat = {}
    for name, value in hyper_parameters.items():
        if name in GROUPS:
            flat.update({old_name.get(key, key): item for key, item in value.items()})
        else:
            flat[name] = value
    return flat


def test_a_checkpoint_with_flat_settings_is_refused_naming_the_upgrade_that_converts_it(smoke_run, tmp_path, capsys):
    from visual_iq.tools.upgrade import main as upgrade_main

    last = smoke_run / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    checkpoint = torch.load(last, weights_only=True)
    grouped = checkpoint["hyper_parameters"]
    assert {"env", "data", "objective", "optim", "online", "evaluation", "speed"} <= set(grouped)
    old = tmp_path / "old.ckpt"
    torch.save({**checkpoint, "hyper_parameters": _flattened(grouped)}, old)
    assert main(["test", "--config", "conf/smoke.yaml", "--ckpt_path", str(old)]) == 1
    assert f"visual-iq upgrade {old}" in capsys.readouterr().err
    assert upgrade_main([str(old)]) == 0 and "settings grouped" in capsys.readouterr().out
    upgraded = torch.load(old, weights_only=True)
    assert upgraded["hyper_parameters"] == grouped
    assert all(torch.equal(upgraded["state_dict"][key], value) for key, value in checkpoint["state_dict"].items())
    assert main(["test", "--config", "conf/smoke.yaml", "--ckpt_path", str(old), "--trainer.logger", "false"]) == 0
    assert upgrade_main([str(old)]) == 0 and "already grouped" in capsys.readouterr().out


def test_each_settings_group_refuses_its_bad_values_by_name():
    from visual_iq.errors import ConfigError
    from visual_iq.train.config import Data, Objective, Online, Optim, Speed

    for build, named in ((lambda: Objective(alpha=0), "objective.alpha=0"), (lambda: Data(batch_size=0), "data.batch_size=0"),
                         (lambda: Optim(lr_drop_at=5), "optim.lr_drop_at=5"), (lambda: Online(buffer_capacity=1),
                                                                               "online.buffer_capacity=1"),
                         (lambda: Speed(updates_per_step=4), "speed.updates_per_step=4")):
        with pytest.raises(ConfigError, match=named):
            build()


def test_a_run_stopped_and_resumed_ends_with_the_weights_of_one_that_never_stopped(tmp_path):
    # Lightning fetches one batch ahead of the update: the checkpoint keeps the sampler's state before that
    # batch, so the resumed run draws it again and trains on exactly the batches of the run that never stopped.
    steady, stopped = tmp_path / "steady", tmp_path / "stopped"
    common = ("--trainer.val_check_interval", "10", "--model.evaluation.video", "false",
              "--model.data.augment_shift", "2")
    assert _fit(steady, "--trainer.max_steps", "20", *common) == 0
    assert _fit(stopped, "--trainer.max_steps", "10", *common) == 0
    last = stopped / "smoke" / "version_0" / "checkpoints" / "last.ckpt"
    assert _fit(stopped, "--trainer.max_steps", "20", "--ckpt_path", str(last), *common) == 0
    ends = [torch.load(root / "smoke" / version / "checkpoints" / "last.ckpt", weights_only=True)
            for root, version in ((steady, "version_0"), (stopped, "version_1"))]
    assert ends[0]["global_step"] == ends[1]["global_step"] == 20
    assert all(torch.equal(ends[0]["state_dict"][key], ends[1]["state_dict"][key]) for key in ends[0]["state_dict"])
