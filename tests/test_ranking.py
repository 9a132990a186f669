"""The open-loop ranking measure: a model's order of the planner's candidates vs the simulator's."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from test_report import write_run

from foresight.errors import ConfigError
from foresight.models import build_model, load_model_config, save_checkpoint
from foresight.planners.config import load_planner
from foresight.planners.optimizers import build_optimizer
from foresight.planners.ranking import compare_orders, rank_agreement
from foresight.report import correlations, load_runs, table_rows


@pytest.mark.parametrize(
    ("preset", "overrides"),
    [
        ("cem", ()),
        ("pusht_skip", ()),  # actions held for 3
        ("icem", ()),  # coloured noise
        ("mppi", ()),
    ],
)
def test_initial_samples_are_what_a_cold_start_scores_first(preset, overrides) -> None:
    """What a model is asked to rank is what the planner's first iteration asks it."""
    config = load_planner(preset, overrides)
    optimizer = build_optimizer(config.optimizer)
    seen: list[np.ndarray] = []

    def record(actions: np.ndarray) -> np.ndarray:
        seen.append(actions.copy())
        return np.arange(len(actions), dtype=float)

    optimizer.optimize(record, config.horizon, 2, np.random.default_rng(7))
    drawn = optimizer.initial_samples(config.horizon, 2, np.random.default_rng(7))
    assert drawn.shape == seen[0].shape == (config.optimizer.samples, config.horizon, 2)
    # CEM puts the warm start first and all zeros last; every other row is a draw.
    inner = slice(1, -1) if preset != "mppi" else slice(None)
    np.testing.assert_array_equal(drawn[inner], seen[0][inner])
    assert drawn.min() >= -1 and drawn.max() <= 1 and drawn.std() > 0.1


def test_compare_orders_reads_as_it_says() -> None:
    true = np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    assert compare_orders(true * 3 + 1, true, 2) == (pytest.approx(1.0), 1.0, 0.0)
    rho, overlap, regret = compare_orders(-true, true, 2)
    assert rho == pytest.approx(-1.0) and overlap == 0.0
    assert regret == pytest.approx(5.0 / 2.5)  # the worst pick: twice the median's distance
    # A model that orders nothing is chance; a state the simulator cannot order is skipped.
    assert compare_orders(np.ones(6), true, 2)[0] == 0.0
    assert compare_orders(true, np.ones(6), 2)[::2] == (None, None)


def test_the_simulator_ranks_as_itself_and_copy_last_does_not(
    tmp_path: Path, short_suite: Callable[..., Path]
) -> None:
    suite = str(short_suite(episodes=3, seed=0, episode_steps=6))
    ranking, states = rank_agreement("oracle", suite, "cem", states=3)
    assert ranking.rho == pytest.approx(1.0) and (ranking.elite_overlap, ranking.regret) == (1, 0)
    assert ranking.states == 3 and ranking.candidates == 200 and ranking.elites == 10
    assert [s.task_id for s in states] == [0, 1, 2]
    # The model's context is the exploration steps too: some states start past the task's start.
    assert any(s.explore_steps > 0 for s in states)

    ckpt = save_checkpoint(tmp_path / "copy.pt", build_model(load_model_config("copy_last")))
    copy, copy_states = rank_agreement(str(ckpt), suite, "cem", states=3)
    # Every future it imagines is the last frame, where cem's cost reads the pusher and the
    # object: every candidate costs the same, an order no better than chance.
    assert copy.rho == 0.0 and copy.elite_overlap < 1
    assert copy.regret is not None and copy.regret > 0
    assert [s.explore_steps for s in copy_states] == [s.explore_steps for s in states]
    again, _ = rank_agreement(str(ckpt), suite, "cem", states=3)
    assert again == copy  # seeded: the same states and candidates


def test_models_that_do_not_plan_are_refused(short_suite: Callable[..., Path]) -> None:
    suite = str(short_suite(episodes=3, seed=0, episode_steps=6))
    for name in ("random", "zero"):
        with pytest.raises(ConfigError, match="does not plan"):
            rank_agreement(name, suite, "fast", states=1)
    with pytest.raises(ConfigError, match="at least 1"):
        rank_agreement("oracle", suite, "fast", states=0)


def test_evaluate_records_the_ranking_and_report_ranks_models_by_it(
    tmp_path: Path, short_suite: Callable[..., Path]
) -> None:
    from foresight.cli import main

    suite = str(short_suite(episodes=3, seed=0, episode_steps=6))
    out = tmp_path / "copy"
    args = ["evaluate", "--model", "copy_last", "--out", str(out), "--planner", "fast"]
    assert main([*args, "--suite", suite, "--ranking-states", "2"]) == 0
    saved = json.loads((out / "evaluation.json").read_text())
    assert saved["ranking"]["states"] == 2 and saved["ranking"]["candidates"] == 64
    assert -1 <= saved["ranking"]["rho"] < 1 and saved["ranking"]["suite"] == "short"

    # Three models whose ranking rho orders them as their success does.
    folders = [write_run(tmp_path / n, n, s, [25.0, 24.0]) for n, s in (("a", 0.9), ("b", 0.5))]
    folders.append(write_run(tmp_path / "c", "c", 0.1, [26.0, 25.0]))
    for folder, rho in zip(folders, (0.8, 0.5, 0.2), strict=True):
        data = json.loads((folder / "evaluation.json").read_text())
        data["ranking"] = {"rho": rho, "regret": 1 - rho, "states": 20, "candidates": 64}
        (folder / "evaluation.json").write_text(json.dumps(data))
    runs = load_runs([*folders, out])
    header, rows = table_rows(runs)
    at = header.index("ranking ρ")
    assert [r[at] for r in rows[:3]] == ["0.80", "0.50", "0.20"]
    assert rows[3][at] == f"{saved['ranking']['rho']:.2f}"
    ranked = correlations(load_runs(folders))
    corr = {c["metric"]: c for c in ranked if c["task"] == "task success"}
    assert corr["ranking ρ"]["models"] == 3 and corr["ranking ρ"]["rho"] == pytest.approx(1.0)
    assert corr["ranking regret"]["rho"] == pytest.approx(-1.0)
    assert "roughly as task success does" in corr["ranking regret"]["sentence"]
