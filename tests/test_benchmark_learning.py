"""benchmarks/learning.py end to end on the tiny smoke config: arms, JSON report, plots, reuse."""

import dataclasses
import json

import numpy as np
import pytest

from benchmarks import learning

ARGS = ["--offline-config", "conf/smoke.yaml", "--online-config", "conf/smoke.yaml", "--demos", "2",
        "--updates", "20", "--online-updates", "20", "--eval-every", "10", "--eval-episodes", "2",
        "--set", "model.online.learning_starts=40", "--set", "model.online.buffer_capacity=200"]


@pytest.fixture(scope="module")
def benchmark(tmp_path_factory):
    root = tmp_path_factory.mktemp("bench")
    args = ARGS + ["--runs", str(root / "runs"), "--out", str(root / "learning")]
    assert learning.main(args) == 0
    return root, args


def test_report_has_every_arm_with_its_curve_and_normalised_return(benchmark):
    root, _ = benchmark
    report = json.loads((root / "learning.json").read_text())
    assert report["expert_return"] == 5.0  # the Catch demos catch every ball
    assert -5.0 <= report["random_return"] < 5.0
    arms = {arm["arm"]: arm for arm in report["arms"]}
    assert set(arms) == {"offline-iq-2demos-seed0", "offline-bc-2demos-seed0",
                         "online-iq-2demos-seed0", "online-sqil-2demos-seed0"}
    for arm in arms.values():
        assert [row["step"] for row in arm["curve"]] == [10, 20]
        expected = (arm["final_return_mean"] - report["random_return"]) / (5.0 - report["random_return"])
        assert arm["final_normalised"] == pytest.approx(expected)
    for name in ("online-iq-2demos-seed0", "online-sqil-2demos-seed0"):
        steps = [row["env_steps"] for row in arms[name]["curve"]]
        assert steps[0] >= 40 and steps[1] > steps[0]  # acting happened between evaluations
    assert (root / "learning_offline.png").stat().st_size > 0
    assert (root / "learning_online.png").stat().st_size > 0


def test_finished_arms_are_read_back_not_retrained(benchmark, capsys):
    root, args = benchmark
    events = sorted((root / "runs").rglob("events.out.tfevents.*"))
    assert learning.main(args) == 0
    assert "already trained" in capsys.readouterr().out
    assert sorted((root / "runs").rglob("events.out.tfevents.*")) == events


def test_runs_longer_than_the_budget_are_read_up_to_it(benchmark, capsys):
    root, args = benchmark
    shorter = args + ["--updates", "10", "--online-updates", "10", "--out", str(root / "shorter")]
    assert learning.main(shorter) == 0
    assert "already trained" in capsys.readouterr().out
    report = json.loads((root / "shorter.json").read_text())
    for arm in report["arms"]:
        assert [row["step"] for row in arm["curve"]] == [10]
        assert arm["updates"] == 10


def test_a_bigger_budget_resumes_each_arm_into_its_next_version_and_reads_them_as_one_curve(benchmark, tmp_path, capsys):
    import shutil
    root, args = benchmark
    runs = tmp_path / "runs"
    shutil.copytree(root / "runs", runs, symlinks=True)
    first = sorted(runs.rglob("version_0/events.out.tfevents.*"))
    more = args + ["--only", "offline", "--methods", "bc", "--updates", "30", "--runs", str(runs),
                   "--out", str(tmp_path / "more")]
    assert learning.main(more) == 0
    assert "resuming" in capsys.readouterr().out
    assert sorted(runs.rglob("version_0/events.out.tfevents.*")) == first  # the first 20 updates kept, not retrained
    report = json.loads((tmp_path / "more.json").read_text())
    assert [arm["arm"] for arm in report["arms"]] == ["offline-bc-2demos-seed0"]  # --methods bc: BC alone
    assert not (runs / "offline-iq-2demos-seed0" / "version_1").exists()
    for arm in report["arms"]:
        assert [row["step"] for row in arm["curve"]] == [10, 20, 30]
        assert arm["curve"][2]["minutes"] >= arm["curve"][1]["minutes"]
        assert (runs / arm["arm"] / "version_1" / "checkpoints" / "last.ckpt").is_file()


def test_no_train_reports_the_runs_there_and_leaves_the_missing_out(benchmark, capsys):
    root, args = benchmark
    events = sorted((root / "runs").rglob("events.out.tfevents.*"))
    report_args = args + ["--no-train", "--seeds", "0", "1", "--targets", "-5", "10", "--out", str(root / "read")]
    assert learning.main(report_args) == 0
    out = capsys.readouterr().out
    assert "left out: offline-iq-2demos-seed1" in out and "env steps to -5" in out
    assert sorted((root / "runs").rglob("events.out.tfevents.*")) == events  # nothing trained
    report = json.loads((root / "read.json").read_text())
    assert {arm["seed"] for arm in report["arms"]} == {0}
    online = [arm for arm in report["arms"] if arm["online"]]
    for arm in online:
        assert arm["env_steps_to"]["-5"] == arm["curve"][0]["env_steps"]  # Catch returns are ≥ -5 from the start
    seeds = {row["arm"]: row for row in report["across_seeds"]}
    assert set(seeds) == {"offline-iq-2demos", "offline-bc-2demos", "online-iq-2demos", "online-sqil-2demos"}
    assert all(row["seeds"] == [0] and row["final_return_std"] == 0.0 for row in seeds.values())


def test_expert_return_is_that_of_the_demos_set_for_the_arms(benchmark, tmp_path):
    # one more "expert" episode that catches nothing: the expert return is over the 21 episodes set
    from visual_iq.data.demos import episode_paths, load_episode, save_episode
    episode = load_episode(episode_paths("tests/data/catch")[0])
    save_episode(dataclasses.replace(episode, rewards=np.zeros_like(episode.rewards)), tmp_path / "e.npz")
    root, args = benchmark
    assert learning.main(args + ["--no-train", "--set", f"model.data.demos=[tests/data/catch, {tmp_path}]",
                                 "--out", str(tmp_path / "read")]) == 0
    report = json.loads((tmp_path / "read.json").read_text())
    assert report["expert_return"] == pytest.approx(20 * 5.0 / 21)


def test_no_train_with_no_run_there_is_an_error(tmp_path):
    assert learning.main(ARGS + ["--no-train", "--runs", str(tmp_path / "none"), "--out", str(tmp_path / "x")]) == 1


def test_random_and_expert_returns_come_from_the_benchmarked_game(tmp_path, capsys):
    # Online Breakout alone: Breakout's random and expert returns, not those of the default offline config (Pong).
    assert learning.reference_config("conf/pong.yaml", "conf/breakout_online.yaml", "online") == "conf/breakout_online.yaml"
    assert learning.reference_config("conf/pong.yaml", "conf/breakout_online.yaml", "offline") == "conf/pong.yaml"
    assert learning.reference_config("conf/pong.yaml", "conf/pong_online_official.yaml", None) == "conf/pong.yaml"
    with pytest.raises(ValueError, match="other games or demos"):  # 20 demos offline, 120 online
        learning.reference_config("conf/pong.yaml", "conf/pong_online.yaml", None)
    code = learning.main(["--offline-config", "conf/pong.yaml", "--online-config", "conf/breakout_online.yaml",
                          "--runs", str(tmp_path / "runs"), "--out", str(tmp_path / "x")])
    assert code == 1 and "other games or demos" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # refused before training anything


def test_offline_arms_do_not_act_even_with_the_online_config():
    # the online config (online: true) may serve the offline arms too: they must say online false
    import argparse
    args = argparse.Namespace(eval_every=10, threads=1, eval_episodes=2, runs="runs", set=[])
    for online in (False, True):
        command = learning.fit_command(learning.Arm("bc", online, 3, 0), "conf/pong_online.yaml", 20, args)
        flag = command.index("--model.online.enabled")
        assert command[flag + 1] == ("true" if online else "false")
