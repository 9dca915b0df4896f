"""The scripted look-ahead experts behind the shipped demos: each game's plan wins points and loses none."""

import numpy as np
import pytest

from visual_iq.data.demos import Episode, load_episode
from visual_iq.env.envs import EnvSettings, make_env
from visual_iq.errors import ConfigError
from visual_iq.record.experts import LookaheadExpert, restore_state
from visual_iq.record.judge import ExpertJudge
from visual_iq.record.recorder import record_episodes, record_expert


def _judged_game(settings: EnvSettings, policy, out, seed: int, expert_acts: bool = False,
                 store_labels: bool = False) -> tuple[ExpertJudge, Episode]:
    """One episode of ``policy`` with the expert asked at every step (`ExpertJudge`), recorded in
    ``out``; ``store_labels``: the expert's labels are stored instead of the executed actions."""
    env = make_env(settings)
    judge = ExpertJudge(policy, LookaheadExpert(env), expert_acts=expert_acts)
    [path] = record_episodes(env, judge, out, episodes=1, source="agent", seed=seed, on_reset=judge.start_episode,
                             progress=lambda _m: None, recorded_action=(lambda: judge.label) if store_labels else None)
    return judge, load_episode(path)


@pytest.mark.parametrize("game, steps, paddle_targets", [
    ("Pong", 400, range(38, 206, 6)),  # paddle y candidates
    ("Breakout", 120, range(55, 200, 5)),  # paddle x candidates
])
def test_expert_plans_for_its_game_and_scores(game, steps, paddle_targets):
    env = make_env(EnvSettings(game, sticky_actions=0.0, noop_max=0))
    expert = LookaheadExpert(env)
    env.reset(seed=3)
    expert.reset()
    rewards, targets, lives = [], set(), []
    for _ in range(steps):
        _, reward, terminated, truncated, info = env.step(expert())
        rewards.append(reward)
        lives.append(info["lives"])
        if expert.target is not None:
            targets.add(expert.target)
    rewards = np.array(rewards)
    assert targets and targets <= set(paddle_targets)  # it planned, with this game's paddle positions
    assert (rewards > 0).sum() >= 1 and not (rewards < 0).any()  # scored, never lost a point
    assert lives[-1] == lives[0]  # Breakout: no life lost (Pong reports 0 lives throughout)


def test_deterministic_plans_are_a_function_of_the_state():
    """Planning in a private emulator without sticky actions gives the same target every time from
    the same state; planning with the env's sticky actions does not (labels an imitator cannot fit)."""
    env = make_env(EnvSettings("Pong", sticky_actions=0.25, noop_max=0))
    sticky, exact = LookaheadExpert(env), LookaheadExpert(env, deterministic_plans=True)
    env.reset(seed=11)
    sticky.reset()
    ale = sticky.ale
    differ, states = 0, 0
    previous = sticky.positions()[1]
    while states < 8:
        towards = sticky.positions()[1]
        if previous and towards > previous and sticky.is_close(towards):  # approaching, in planning range
            state = ale.cloneState()
            ram = ale.getRAM().copy()
            targets = [exact._plan() for _ in range(2)]
            assert targets[0] == targets[1]
            assert np.array_equal(ale.getRAM(), ram)  # the env's emulator is left where it was
            differ += sticky._plan() != sticky._plan()
            ale.restoreState(state)
            states += 1
        previous = towards
        env.step(sticky())
    assert differ >= 1


def test_rollouts_start_with_the_games_last_action_in_sticky_frames():
    """ALE's state leaves out the action sticky frames repeat, so a rollout restored from the game's
    state would repeat the previous rollout's last action. Primed with the action the game executed
    (NOOP here), a NOOP step in the planner never moves the paddle, even after a rollout of UP;
    restored alone, it does (the control)."""
    env = make_env(EnvSettings("Pong", sticky_actions=0.25, noop_max=0))
    expert = LookaheadExpert(env)
    env.reset(seed=5)
    for _ in range(25):
        env.step(0)
    state, planner = expert.ale.cloneState(), expert.planner
    up, noop = expert.action_set[expert.spec.decrease], expert.action_set[0]

    def moved_after_stale_up(prime: bool) -> int:
        moved = 0
        for _ in range(40):
            planner.restoreState(state)
            for _ in range(30):
                planner.act(up)  # a rollout that ends pressing UP
            restore_state(planner, state, noop) if prime else planner.restoreState(state)
            before = expert.positions(planner)[2]
            for _ in range(4):
                planner.act(noop)
            moved += expert.positions(planner)[2] != before
        return moved

    assert moved_after_stale_up(prime=False) >= 3
    assert moved_after_stale_up(prime=True) == 0


def test_the_expert_primes_its_rollouts_with_the_executed_action(monkeypatch):
    """Every rollout starts from the action the game last executed: the expert's own, or the one a
    recorder reports with `executed`."""
    env = make_env(EnvSettings("Pong", sticky_actions=0.25, noop_max=0))
    expert = LookaheadExpert(env)
    env.reset(seed=5)
    primed = []
    monkeypatch.setattr("visual_iq.record.experts.restore_state", lambda ale, state, action: primed.append(action))
    expert.executed(3)
    expert._scores((120, 126), until_bounce=True)
    assert primed == [expert.action_set[3]] * 2


def test_no_expert_for_other_games():
    with pytest.raises(ConfigError, match="no scripted expert for Seaquest; experts exist for Pong, Breakout"):
        LookaheadExpert(make_env("Seaquest"))


def test_action_noise_is_recorded_and_changes_the_executed_play(tmp_path):
    settings = EnvSettings("Pong", sticky_actions=0.0, noop_max=0, max_episode_frames=800)
    quiet = record_expert(settings, tmp_path / "quiet", episodes=1, seed=5, progress=lambda _m: None)
    noisy = record_expert(settings, tmp_path / "noisy", episodes=1, seed=5, action_noise=0.5, progress=lambda _m: None)
    quiet, noisy = load_episode(quiet[0]), load_episode(noisy[0])
    assert quiet.extra["action_noise"] == 0.0 and noisy.extra["action_noise"] == 0.5
    assert not np.array_equal(quiet.frames, noisy.frames)  # random actions were executed


def test_record_tool_passes_env_flags_and_action_noise(monkeypatch, tmp_path):
    import visual_iq.record.recorder
    from visual_iq.tools.record import main

    calls = []
    monkeypatch.setattr(visual_iq.record.recorder, "record_expert", lambda settings, out, **kwargs: calls.append((settings, kwargs)))
    assert main(["--source", "expert", "--game", "Breakout", "--out", str(tmp_path), "--frame-skip", "2",
                 "--stack-size", "3", "--terminal-on-life-loss", "--action-noise", "0.2", "--sticky", "0",
                 "--deterministic-plans", "--replan-every", "1", "--crop-top", "30", "--crop-bottom", "10"]) == 0
    settings, kwargs = calls[0]
    assert settings == EnvSettings("Breakout", frame_skip=2, stack_size=3, terminal_on_life_loss=True,
                                   sticky_actions=0.0, crop_top=30, crop_bottom=10)
    assert kwargs["action_noise"] == 0.2 and kwargs["judge_ckpt"] is None
    assert kwargs["deterministic_plans"] is True and kwargs["replan_every"] == 1
    assert main(["--source", "expert", "--out", str(tmp_path), "--expert-labels", "--ckpt", "agent.ckpt"]) == 0
    assert calls[1][1]["judge_ckpt"] == "agent.ckpt"
    with pytest.raises(SystemExit):  # nothing to judge
        main(["--source", "expert", "--out", str(tmp_path), "--expert-labels"])


def test_judge_asks_the_expert_before_each_step_and_counts_agreement_by_phase(tmp_path):
    # Replaying the expert's own recorded actions in the same deterministic episode, the expert's
    # labels must be exactly those actions; a policy that always does nothing agrees less.
    settings = EnvSettings("Pong", sticky_actions=0.0, noop_max=0, max_episode_frames=1200)
    recorded = load_episode(record_expert(settings, tmp_path / "expert", episodes=1, seed=7, progress=lambda _m: None)[0])

    def judged(actions: np.ndarray, expert_acts: bool = False) -> tuple[ExpertJudge, np.ndarray]:
        steps = iter(actions.tolist())
        judge, episode = _judged_game(settings, lambda _observation: next(steps), tmp_path / "judged", seed=7,
                                      expert_acts=expert_acts)
        return judge, episode.frames

    replay, _ = judged(recorded.actions)
    assert replay.agreement() == {"no ball": 1.0, "following": 1.0, "planned": 1.0, "all": 1.0}
    assert sum(steps for steps, _ in replay.episodes[0].values()) == recorded.length
    noops = np.zeros(recorded.length, dtype=np.int64)
    idle, _ = judged(noops)
    assert 0.0 < idle.agreement()["all"] < 0.95
    assert idle.episodes[0]["planned"][0] > 0  # the ball came close and the expert planned
    assert "agreement with the expert on the agent's states: " in idle.report()
    # With the expert acting, the NOOP policy is only judged: the expert's episode is replayed
    # exactly, and the agreement is the NOOP share of the expert's actions.
    shadow, frames = judged(noops, expert_acts=True)
    assert np.array_equal(frames, recorded.frames)
    assert shadow.agreement()["all"] == pytest.approx(np.mean(recorded.actions == 0))
    assert "agreement with the expert on the expert's states: " in shadow.report()


def test_breakout_expert_follows_the_ball_and_plans_only_the_last_steps():
    """As Pong's, the Breakout expert plans only once the falling ball is close (y >= plan_from),
    so most of each approach is the visible rule "follow the ball" (demos/breakout_late)."""
    env = make_env(EnvSettings("Breakout", sticky_actions=0.0, noop_max=0))
    expert = LookaheadExpert(env)
    env.reset(seed=5)
    expert.reset()
    planned_heights, followed_while_falling = [], 0
    previous = 0
    for _ in range(300):
        action = expert()
        _, towards, _ = expert.positions()
        if expert.phase == "planned":
            planned_heights.append(towards)
        elif previous and towards > previous:  # the ball falls towards the paddle, not yet planned
            followed_while_falling += 1
        previous = towards
        env.step(action)
    assert planned_heights and min(planned_heights) >= expert.spec.plan_from == 140
    assert followed_while_falling > len(planned_heights)


def test_dagger_stores_the_experts_labels_on_the_agents_own_states(tmp_path):
    """`record_agent(dagger=True)`'s storage: the frames are the acting policy's game, the actions
    stored are the expert's labels, so the share of labels equal to the executed action is the
    judge's agreement; without ``recorded_action`` the executed actions are stored."""
    settings = EnvSettings("Pong", sticky_actions=0.0, noop_max=0, max_episode_frames=1200)

    never_moves = lambda _observation: 0  # noqa: E731
    judge, labelled = _judged_game(settings, never_moves, tmp_path / "labels", seed=7, store_labels=True)
    _, executed = _judged_game(settings, never_moves, tmp_path / "executed", seed=7)
    assert not executed.actions.any()  # NOOP executed throughout
    assert np.array_equal(labelled.frames, executed.frames)  # the same (agent's) game
    assert len(set(labelled.actions.tolist())) >= 3  # the expert steers: its labels, not NOOPs
    assert np.isclose((labelled.actions == 0).mean(), judge.agreement()["all"])


def test_record_tool_dagger_flag(monkeypatch, tmp_path):
    import visual_iq.record.recorder
    from visual_iq.tools.record import main

    calls = []
    monkeypatch.setattr(visual_iq.record.recorder, "record_agent", lambda ckpt, out, **kwargs: calls.append(kwargs))
    assert main(["--source", "agent", "--ckpt", "agent.ckpt", "--out", str(tmp_path), "--dagger"]) == 0
    assert calls[0]["dagger"] is True and calls[0]["expert_labels"] is False
    with pytest.raises(SystemExit):  # the expert's own states need no labels
        main(["--source", "expert", "--out", str(tmp_path), "--dagger"])


def test_asking_the_expert_does_not_change_the_game(tmp_path):
    """A judged game must be the game the policy plays alone: the expert plans in its own emulator,
    so the env's sticky actions repeat the policy's last action and draw from the env's random
    stream as without it (planning in the env's emulator and restoring its state changed both)."""
    settings = EnvSettings("Pong", sticky_actions=0.25, noop_max=0, max_episode_frames=2400)
    pattern = [2] * 5 + [0] * 2 + [3] * 5 + [0] * 3  # a paddle that keeps moving, so stickiness shows

    steps = iter(pattern * 1000)
    judge, judged = _judged_game(settings, lambda _observation: next(steps), tmp_path / "judged", seed=3)
    assert judge.episodes[0]["planned"][0] > 0  # the expert did plan (and simulate) during the game
    steps = iter(pattern * 1000)
    [alone] = record_episodes(make_env(settings), lambda _observation: next(steps), tmp_path / "alone", episodes=1,
                              source="agent", seed=3, progress=lambda _m: None)
    assert np.array_equal(judged.frames, load_episode(alone).frames)


def test_expert_demos_with_sticky_actions_replay_exactly(tmp_path):
    """Since the expert plans in its own emulator, its games replay from their seed and actions, so
    `visual-iq demos render` can store them under other frame settings."""
    from visual_iq.record.replay import rerender_episode

    settings = EnvSettings("Pong", sticky_actions=0.25, max_episode_frames=1600)
    [path] = record_expert(settings, tmp_path, episodes=1, seed=9, progress=lambda _m: None)
    original = load_episode(path)
    cropped = rerender_episode(original, EnvSettings("Pong", sticky_actions=0.25, max_episode_frames=1600,
                                                     crop_top=34, crop_bottom=16))
    assert np.array_equal(cropped.actions, original.actions) and cropped.length == original.length
