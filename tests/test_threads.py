"""One thread setting per run: ``--threads`` sets torch's threads, and the vector envs follow torch."""

import os

import pytest
import torch

from visual_iq.cli import TRAINER_DEFAULTS, VisualIQCLI, main
from visual_iq.env.envs import EnvSettings, make_vector_env
from visual_iq.train.module import IQLearn


@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))  # restored afterwards
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _live_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def test_vector_env_steps_on_at_most_torchs_threads(restore_threads):
    torch.set_num_threads(1)
    before = _live_threads()
    env = make_vector_env(EnvSettings("Pong"), 4)
    env.reset(seed=0)
    try:
        # ale-py's default would start one worker per core (min(cores, envs) = 2 or more here).
        assert _live_threads() - before == 1
    finally:
        env.close()


def test_cli_threads_sets_torch_and_ddp_processes(restore_threads):
    torch.set_num_threads(2)
    VisualIQCLI(IQLearn, run=False, trainer_defaults=TRAINER_DEFAULTS,
                args=["--config", "conf/smoke.yaml", "--trainer.logger", "false", "--threads", "1"])
    assert torch.get_num_threads() == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"  # what Lightning's DDP launcher gives each process


def test_cli_rejects_zero_threads(restore_threads, capsys):
    assert main(["fit", "--config", "conf/smoke.yaml", "--threads", "0"]) == 1
    assert capsys.readouterr().err.strip() == "visual-iq: error: --threads must be at least 1, got 0"
