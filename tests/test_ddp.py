"""Lightning DDP on CPU (gloo): two processes train, each on its own batches and envs, to the same weights; one
checkpoint; resume, rank 0 going on with its own sampling stream."""

import json
import os
import subprocess
import sys

import torch

ONLINE = ["--model.online.enabled", "true", "--model.objective.variant", "value", "--model.online.num_envs", "2",
          "--model.online.learning_starts", "40", "--model.online.buffer_capacity", "300"]


def _ddp_fit(root, probe, *extra):
    command = [sys.executable, "-m", "visual_iq", "fit", "--config", "conf/smoke.yaml", "--trainer.accelerator", "cpu",
               "--trainer.devices", "2", "--trainer.strategy", "ddp", "--trainer.val_check_interval", "10",
               "--trainer.logger.init_args.save_dir", str(root), "--trainer.callbacks+=ddp_probe.RecordFirstBatch",
               *ONLINE, *extra]
    probe.mkdir(parents=True, exist_ok=True)
    environment = {**os.environ, "PYTHONPATH": "tests", "PROBE_DIR": str(probe), "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads((probe / f"rank{rank}.json").read_text()) for rank in (0, 1)]


def test_two_process_ddp_run_checkpoints_once_and_resumes(tmp_path):
    ranks = _ddp_fit(tmp_path / "a", tmp_path / "probe_a", "--trainer.max_steps", "20")
    assert [r["world_size"] for r in ranks] == [2, 2]
    # each process samples its own batches (distinct seeds), not copies of rank 0's
    assert ranks[0]["observations_sum"] != ranks[1]["observations_sum"]
    assert ranks[0]["weights"] == ranks[1]["weights"]  # gradients averaged: every rank ends with the same network
    assert len(ranks[0]["eval_returns"]) == 2 and ranks[0]["eval_returns"] == ranks[1]["eval_returns"]  # same games
    checkpoints = tmp_path / "a" / "smoke" / "version_0" / "checkpoints"
    assert "last.ckpt" in [p.name for p in checkpoints.iterdir()]
    assert not list((tmp_path / "a" / "smoke").glob("version_1"))  # one run directory, written by rank 0
    saved = torch.load(checkpoints / "last.ckpt", weights_only=False)
    assert saved["global_step"] == 20
    assert saved["policy_buffer"]["written"] == 1 + 20 + 20  # rank 0's replay: reset, warm-up 40 / 2 envs, 20 updates

    ranks = _ddp_fit(tmp_path / "b", tmp_path / "probe_b", "--trainer.max_steps", "30",
                     "--ckpt_path", str(checkpoints / "last.ckpt"))
    assert ranks[0]["observations_sum"] != ranks[1]["observations_sum"]  # rank 1 did not take over rank 0's stream
    assert ranks[0]["weights"] == ranks[1]["weights"]
    # rank 0 goes on with its own stream: its first batch after resuming has the expert rows that a run that never
    # stopped draws at that update (later ones may differ: the resumed envs restart, so the policy replay's fill does)
    steady = _ddp_fit(tmp_path / "c", tmp_path / "probe_c", "--trainer.max_steps", "21")
    assert ranks[0]["expert_rows_by_update"]["20"] == steady[0]["expert_rows_by_update"]["20"]
    resumed = torch.load(tmp_path / "b" / "smoke" / "version_0" / "checkpoints" / "last.ckpt", weights_only=False)
    assert resumed["global_step"] == 30
    assert resumed["policy_buffer"]["written"] == saved["policy_buffer"]["written"] + 1 + 10
