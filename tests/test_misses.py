"""visual-iq misses: games split into approaches of the ball, missed or returned, and the expert's takeover."""

import json

import pytest

from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.analysis.misses import MISSED, RETURNED, approach_outcome, play_approaches, summarise
from visual_iq.tools.misses import main


@pytest.mark.parametrize("before, after, sign, reward, lost_life, expected", [
    (150, 154, 1, 0.0, False, None),  # still approaching
    (150, 146, 1, 0.0, False, RETURNED),  # moving away again
    (150, 146, -1, 0.0, False, None),  # approaching, for a paddle on the other side
    (150, 154, -1, 0.0, False, RETURNED),
    (190, 0, 1, 0.0, False, None),  # out of play: not a return
    (190, 194, 1, -1.0, False, MISSED),  # a point lost
    (100, 104, 1, 0.0, True, MISSED),  # a life lost
])
def test_approach_outcome(before, after, sign, reward, lost_life, expected):
    assert approach_outcome(before, after, sign, reward, lost_life) == expected


def _short_pong():
    return make_env(EnvSettings("Pong", noop_max=0, max_episode_frames=800))  # 200 agent steps


def test_an_idle_paddle_misses_and_the_expert_saves_those_approaches():
    env = _short_pong()
    approaches, returns = play_approaches(env, lambda observation: 0, episodes=1, seed=5, takeover_samples=1,
                                          progress=lambda message: None)
    summary = summarise(approaches, returns)
    missed = [a for a in approaches if a.outcome == MISSED]
    assert len(missed) >= 3 and summary["missed"] == len(missed) and returns[0] <= -len(missed)
    assert all(a.close_from is not None and len(a.takeover) == 1 for a in missed)
    # from the point where it plans the hit, the expert returns the balls the idle paddle missed
    assert summary["takeover_play_outs"] == len(missed) and summary["takeover_saved"] >= 0.75
    # NOOP agrees with the expert only where the expert waits: less in the close phase of a miss
    assert summary["agreement"][MISSED]["close_second_half"] < 0.5


def test_the_tool_on_the_expert_and_on_an_agent(tmp_path, capsys):
    out = tmp_path / "misses.json"
    assert main(["--expert", "--episodes", "1", "--seed", "5", "--max-steps", "200", "--json", str(out)]) == 0
    expert = json.loads(out.read_text(), parse_constant=lambda name: pytest.fail(f"non-standard JSON {name}"))
    assert expert["takeover_saved"] is None  # the expert takes over from no one: null, not NaN
    assert expert["player"] == "expert" and expert["approaches"] >= 2 and expert["miss_rate"] <= 0.25
    assert expert["agreement"][RETURNED]["close_first_half"] == 1.0  # the expert's action is its own label
    assert "approaches per episode" in capsys.readouterr().out
    assert main(["--ckpt", "agents/pong_online_iq.ckpt", "--episodes", "1", "--max-steps", "200"]) == 0
    assert "the expert taking over at the close point saves" in capsys.readouterr().out


def test_the_tool_names_a_bad_checkpoint(tmp_path, capsys):
    missing = tmp_path / "none.ckpt"
    assert main(["--ckpt", str(missing), "--episodes", "1"]) == 2
    assert str(missing) in capsys.readouterr().err
