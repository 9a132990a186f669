"""Visual-foresight planning: optimizers, costs, predictors, the MPC loop, the suite runner.

Optimizers (CEM, MPPI), costs on imagined frames, predictors (the simulator oracle, trained
video models), the MPC loop and the task-suite runner.

``run_suite`` is the API behind ``foresight plan`` (and ``foresight evaluate``).
"""

from foresight.planners.config import PlannerConfig, load_planner, planner_from_dict
from foresight.planners.costs import COSTS, Auxiliary, Cost, CostConfig, build_cost
from foresight.planners.mpc import (
    EpisodeResult,
    MPCPolicy,
    Policy,
    RandomPolicy,
    ZeroPolicy,
    run_episode,
)
from foresight.planners.optimizers import (
    CEM,
    MPPI,
    OPTIMIZERS,
    CEMConfig,
    MPPIConfig,
    Optimizer,
    OptimizeResult,
    build_optimizer,
)
from foresight.planners.predictors import ModelPredictor, Observation, OraclePredictor, Predictor
from foresight.planners.suite import NAMED_POLICIES, SuiteResult, build_policy, run_suite

__all__ = [
    "CEM",
    "COSTS",
    "Auxiliary",
    "MPPI",
    "NAMED_POLICIES",
    "OPTIMIZERS",
    "CEMConfig",
    "Cost",
    "CostConfig",
    "EpisodeResult",
    "MPCPolicy",
    "MPPIConfig",
    "ModelPredictor",
    "Observation",
    "OptimizeResult",
    "Optimizer",
    "OraclePredictor",
    "PlannerConfig",
    "Policy",
    "Predictor",
    "RandomPolicy",
    "SuiteResult",
    "ZeroPolicy",
    "build_cost",
    "build_optimizer",
    "build_policy",
    "load_planner",
    "planner_from_dict",
    "run_episode",
    "run_suite",
]
