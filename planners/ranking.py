"""How a model orders candidate plans beside the simulator: its part in planning, open-loop.

A planner uses its model for one thing: to order candidate action sequences by the cost of
their imagined futures (CEM keeps the best few and samples around them). Seed 000 (Rybkin,
"The reasonable ineffectiveness of pixel metrics for future prediction", 2018) asks whether
pixel metrics tell which model lets the robot do the task; this measures the model's part
directly, without running an episode. From states of a suite's tasks, the candidates the
planner's first iteration draws (:meth:`~foresight.planners.optimizers.Optimizer.initial_samples`)
are scored through the model and through the simulator (the oracle predictor), under the same
cost, and the two orders compared:

* ``rho``: Spearman's rank correlation of the two costs (1: the model orders the plans as
  the simulator does, 0: no better than chance);
* ``elite_overlap``: the share of the simulator's ``k`` best among the model's ``k`` best,
  ``k`` the planner's elites (CEM) or a tenth of the candidates;
* ``regret``: the simulator's cost of the model's pick above the true best, as a share of
  the true costs' spread (median minus best): 0 is the best pick, 1 a median one.

Each is the mean over states. State ``i`` is task ``i``'s start advanced by ``u`` steps of
the env's exploration policy (``u`` drawn from ``0 .. steps // 2``), so that most states have
the robot near or against the object, as during an episode; the model sees those steps as
its context, as it would have in the episode.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from foresight.config import check_seed
from foresight.errors import ConfigError
from foresight.planners.config import PlannerConfig, planner_to_dict
from foresight.planners.mpc import MPCPolicy, observation
from foresight.planners.optimizers import build_optimizer
from foresight.planners.predictors import OraclePredictor
from foresight.planners.suite import AgentSpec, build_policy, check_planning
from foresight.results import Ranking


@dataclass(frozen=True)
class StateRanking:
    """The comparison at one state (None where the simulator's costs do not differ)."""

    task_id: int
    explore_steps: int
    rho: float | None
    elite_overlap: float
    regret: float | None


def compare_orders(
    model_costs: np.ndarray, true_costs: np.ndarray, k: int
) -> tuple[float | None, float, float | None]:
    """``(rho, elite_overlap, regret)`` of a model's costs against the true ones, ``(N,)`` each.

    ``rho`` and ``regret`` are None where the true costs are all equal (no order to match).
    """
    spread = float(np.median(true_costs) - true_costs.min())
    if np.ptp(true_costs) == 0:
        rho, regret = None, None
    else:
        # A model whose costs are all equal orders nothing: it is as good as chance.
        rho = 0.0 if np.ptp(model_costs) == 0 else float(spearmanr(model_costs, true_costs)[0])
        pick = int(np.argmin(model_costs))
        regret = float(true_costs[pick] - true_costs.min()) / spread if spread > 0 else 0.0
    best_model = set(np.argsort(model_costs, kind="stable")[:k].tolist())
    best_true = set(np.argsort(true_costs, kind="stable")[:k].tolist())
    return rho, len(best_model & best_true) / k, regret


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def rank_agreement(
    model: str | Path,
    suite: str = "easy",
    planner: str | Path | PlannerConfig = "cem",
    states: int = 20,
    seed: int = 0,
    device: str = "cpu",
    on_state: Callable[[StateRanking], None] | None = None,
) -> tuple[Ranking, list[StateRanking]]:
    """Compare how ``model`` and the simulator order the planner's candidates.

    Args:
        model: A checkpoint path or training run directory (or ``oracle``: 1, 1 and 0, a
            check of the measure itself).
        suite: Suite preset or YAML whose tasks give the states (its first ``states``).
        planner: Planner preset, YAML path or config: its cost, horizon and first-iteration
            samples (the model's ``plan:`` budget applied, as in planning).
        states: States compared.
        seed: Seed of the exploration steps and of the candidates.
        device: Where the model runs.
        on_state: Called after each state (progress).

    Returns:
        The means over states, and each state's comparison.

    Raises:
        ConfigError: Bad suite, planner, or a model that does not plan (``random``, ``zero``);
        CheckpointError: A bad checkpoint.
    """
    from foresight.envs import load_suite, sample_tasks

    if states < 1:
        raise ConfigError(f"ranking states must be at least 1, got {states}")
    seed = check_seed(seed)
    suite_cfg = load_suite(suite)
    env = suite_cfg.env_spec()
    inputs = check_planning(model, planner, env)
    if not inputs.plans:
        raise ConfigError(f"'{inputs.model}' does not plan, so it orders no candidates to compare")
    planner_cfg = inputs.planner
    spec = AgentSpec(inputs.model, planner_to_dict(planner_cfg), env, 1, device)
    learned = build_policy(spec)
    sized = env.with_image_size(learned.image_size)
    oracle = MPCPolicy(OraclePredictor(sized), planner_cfg, 1, "cpu")
    live = sized.make()
    optimizer = build_optimizer(planner_cfg.optimizer)
    samples = planner_cfg.optimizer.samples
    k = int(getattr(planner_cfg.optimizer, "elites", 0)) or max(1, samples // 10)
    steps = suite_cfg.episode_steps
    results: list[StateRanking] = []
    try:
        for task in sample_tasks(env, suite_cfg.tasks, suite_cfg.seed, states):
            rng = np.random.default_rng([seed, task.task_id, 2])
            raw, info = live.reset(options={"task": task})
            obs = observation(live, raw)
            goal = live.goal(task)
            explore = int(rng.integers(0, steps // 2 + 1))
            for policy in (learned, oracle):
                policy_rng = np.random.default_rng([seed, task.task_id, 3])
                policy.reset(live, goal, obs, policy_rng, steps - explore)
            act = live.exploration_policy(rng, live.policy_config_class())
            for _ in range(explore):
                action = np.asarray(act(raw, info), np.float32)
                raw, _, _, _, info = live.step(action)
                obs = observation(live, raw)
                for policy in (learned, oracle):
                    policy.observe(action, obs)
            candidates = optimizer.initial_samples(
                planner_cfg.horizon, int(live.action_space.shape[0]), rng
            )
            rho, overlap, regret = compare_orders(
                learned.cost_fn(candidates), oracle.cost_fn(candidates), k
            )
            results.append(StateRanking(task.task_id, explore, rho, overlap, regret))
            if on_state is not None:
                on_state(results[-1])
    finally:
        for closing in (learned, oracle, live):
            closing.close()
    ranking = Ranking(
        rho=_mean([r.rho for r in results]),
        elite_overlap=_mean([r.elite_overlap for r in results]),
        regret=_mean([r.regret for r in results]),
        states=len(results),
        candidates=samples,
        elites=k,
        suite=suite_cfg.name,
        seed=seed,
    )
    return ranking, results
