"""Sampling-based trajectory optimizers: CEM and MPPI behind one interface.

An optimizer sees only a cost function over a batch of action sequences,
``cost_fn((N, H, A) float array in [-1, 1]) -> (N,) costs``, never a model or an env
(the MPC loop in :mod:`foresight.planners.mpc` glues those). All randomness comes from the
``numpy.random.Generator`` passed in, so a seeded run is reproducible.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from foresight.errors import ConfigError
from foresight.registry import Registry

#: ``(N, H, A)`` action sequences -> ``(N,)`` costs (lower is better).
CostFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class OptimizerConfig:
    """Fields every optimizer config has.

    Attributes:
        name: Registry name (``cem``, ``mppi``).
        samples: Action sequences scored per iteration (``N``).
        iterations: Refinement iterations per planning step.
        init_std: Std of the sampling distribution at the start of each planning step.
    """

    name: str
    samples: int = 200
    iterations: int = 3
    init_std: float = 0.5

    def __post_init__(self) -> None:
        if self.samples < 2:
            raise ConfigError(f"optimizer samples must be at least 2, got {self.samples}")
        if self.iterations < 1:
            raise ConfigError(f"optimizer iterations must be at least 1, got {self.iterations}")
        if self.init_std <= 0:
            raise ConfigError(f"optimizer init_std must be positive, got {self.init_std}")


@dataclass(frozen=True)
class OptimizeResult:
    """What one call of :meth:`Optimizer.optimize` found.

    Attributes:
        actions: ``(H, A)`` the plan to execute (its first actions are executed).
        mean: ``(H, A)`` the final sampling mean, for warm-starting the next step.
        cost: Cost of the best sequence evaluated.
        evaluations: Sequences scored in total.
    """

    actions: np.ndarray
    mean: np.ndarray
    cost: float
    evaluations: int


class Optimizer(ABC):
    """Minimises a cost over action sequences in ``[-1, 1]^(H x A)``.

    Args:
        config: The optimizer's settings (an instance of ``config_class``).
    """

    config_class: ClassVar[type[OptimizerConfig]] = OptimizerConfig

    def __init__(self, config: OptimizerConfig) -> None:
        self.config = config

    @abstractmethod
    def optimize(
        self,
        cost_fn: CostFn,
        horizon: int,
        action_dim: int,
        rng: np.random.Generator,
        init_mean: np.ndarray | None = None,
    ) -> OptimizeResult:
        """Search for a low-cost action sequence.

        Args:
            cost_fn: ``(N, H, A) -> (N,)``, lower is better.
            horizon: ``H``, actions per sequence.
            action_dim: ``A``.
            rng: The only source of randomness.
            init_mean: ``(H, A)`` initial mean (the previous plan shifted), zeros if None.
        """

    @abstractmethod
    def initial_samples(
        self, horizon: int, action_dim: int, rng: np.random.Generator
    ) -> np.ndarray:
        """The candidates a cold start's first iteration draws: zero mean, ``init_std``.

        Drawn exactly as :meth:`optimize` draws them (its noise, its held actions), without
        the sequences it adds by rule (the warm start, all zeros), so that what a model is
        asked to rank (:mod:`foresight.planners.ranking`) is what this planner asks it.

        Returns:
            ``(N, H, A)`` sequences in [-1, 1], ``N`` the config's ``samples``.
        """


def colored_noise(
    rng: np.random.Generator, samples: int, steps: int, dim: int, beta: float
) -> np.ndarray:
    """Gaussian noise whose power spectrum along the steps falls as ``1 / f**beta``.

    Pinneri et al., "Sample-efficient Cross-Entropy Method for Real-time Planning" (iCEM,
    CoRL 2020): with ``beta`` around 2, consecutive actions are correlated, so sampled pushes
    keep a direction for several steps instead of jittering, and fewer samples find one.
    Drawn in the frequency domain (Timmer & Koenig 1995, as the ``colorednoise`` package
    does) and scaled to exactly unit variance at every step.

    Args:
        rng: Source of randomness.
        samples: Sequences ``N``.
        steps: Steps per sequence ``H``.
        dim: Action size ``A``.
        beta: Spectral exponent; 0 is white noise, drawn exactly as ``standard_normal``.

    Returns:
        ``(N, H, A)`` noise.
    """
    if beta == 0 or steps < 2:
        return rng.standard_normal((samples, steps, dim))
    freqs = np.fft.rfftfreq(steps)  # (F,)
    freqs[0] = 1.0 / steps  # the lowest resolvable frequency stands in for DC
    scale = freqs ** (-beta / 2.0)
    # The std of each output step: a real term (DC; Nyquist of an even length) drawn with
    # variance 2 s^2 adds 2 s^2, a complex one (both its real and imaginary parts s^2) 4 s^2.
    weight = np.full(len(freqs), 4.0)
    weight[0] = 2.0
    if steps % 2 == 0:
        weight[-1] = 2.0
    sigma = np.sqrt(np.sum(weight * scale**2)) / steps
    shape = (samples, dim, len(freqs))
    real = rng.standard_normal(shape) * scale
    imag = rng.standard_normal(shape) * scale
    imag[..., 0] = 0.0  # the DC term is real
    real[..., 0] *= np.sqrt(2.0)
    if steps % 2 == 0:  # so is the Nyquist term of an even length
        imag[..., -1] = 0.0
        real[..., -1] *= np.sqrt(2.0)
    noise = np.fft.irfft(real + 1j * imag, n=steps, axis=-1) / sigma  # (N, A, H)
    return np.moveaxis(noise, -1, 1)


def ar1_noise(
    rng: np.random.Generator, samples: int, steps: int, dim: int, rho: float
) -> np.ndarray:
    """Stationary AR(1) noise along the steps: unit variance, correlation ``rho`` between steps.

    Returns:
        ``(N, H, A)`` noise.
    """
    white = rng.standard_normal((samples, steps, dim))
    noise = np.empty_like(white)
    noise[:, 0] = white[:, 0]
    for t in range(1, steps):
        noise[:, t] = rho * noise[:, t - 1] + math.sqrt(1 - rho**2) * white[:, t]
    return noise


def _check_costs(costs: np.ndarray, n: int) -> np.ndarray:
    costs = np.asarray(costs, dtype=np.float64).reshape(-1)
    if costs.shape != (n,):
        raise ValueError(f"cost_fn must return ({n},) costs, got shape {costs.shape}")
    # A NaN (e.g. an empty colour mask) must never win: treat it as the worst cost.
    return np.where(np.isfinite(costs), costs, np.inf)


@dataclass(frozen=True)
class CEMConfig(OptimizerConfig):
    """Cross-entropy method settings (defaults as in visual foresight and VP2).

    Attributes:
        elites: Lowest-cost samples that refit the Gaussian (``K``).
        min_std: Floor on the per-dimension std, so the search never collapses.
        momentum: Weight of the old mean/std when refitting (0 = pure refit).
        action_repeat: Each sampled action is held for this many steps (1 = off); the
            search space shrinks to ``ceil(H / action_repeat)`` actions.
        include_mean: Score the initial mean (the warm start) as one of the first samples,
            so a good plan from the previous step is never lost to sampling noise.
        include_zero: Score the all-zero sequence too (no motion: foresight's actions move
            the robot's target relative to where it is), so once at the goal, holding still
            is never lost to sampling noise.
        noise_beta: Spectral exponent of the sampling noise along the horizon (iCEM,
            Pinneri et al. 2020): 0 is white noise (classic CEM); 2 to 3 give smooth,
            persistent pushes.
        keep_elites: Share of each iteration's elites scored again among the next
            iteration's samples (iCEM keeps 0.3), so a good sequence is not lost to the refit.
    """

    name: str = "cem"
    elites: int = 10
    min_std: float = 0.05
    momentum: float = 0.0
    action_repeat: int = 1
    include_mean: bool = True
    include_zero: bool = False
    noise_beta: float = 0.0
    keep_elites: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 1 <= self.elites <= self.samples:
            raise ConfigError(f"cem elites must be in [1, samples], got {self.elites}")
        if self.action_repeat < 1:
            raise ConfigError(f"cem action_repeat must be at least 1, got {self.action_repeat}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"cem momentum must be in [0, 1), got {self.momentum}")
        if not 0.0 <= self.noise_beta <= 5.0:
            raise ConfigError(f"cem noise_beta must be in [0, 5], got {self.noise_beta}")
        if not 0.0 <= self.keep_elites <= 1.0:
            raise ConfigError(f"cem keep_elites must be in [0, 1], got {self.keep_elites}")


#: Planner optimizers by the name a planner config's ``optimizer.name`` gives.
OPTIMIZERS = Registry[type[Optimizer]]("optimizer")


@OPTIMIZERS.register("cem")
class CEM(Optimizer):
    """Cross-entropy method over open-loop action sequences.

    Rubinstein 1999; as used for visual foresight by Finn & Levine 2017 and Ebert et al. 2018.

    Each iteration samples ``N`` sequences from a diagonal Gaussian clipped to the action
    bounds, keeps the ``K`` lowest-cost ones and refits the Gaussian to them. The result is
    the lowest-cost sequence seen in any iteration. ``noise_beta`` and ``keep_elites`` turn
    on two parts of iCEM (Pinneri et al. 2020): coloured sampling noise and elites carried
    into the next iteration.
    """

    config_class = CEMConfig

    def optimize(
        self,
        cost_fn: CostFn,
        horizon: int,
        action_dim: int,
        rng: np.random.Generator,
        init_mean: np.ndarray | None = None,
    ) -> OptimizeResult:
        """See :meth:`Optimizer.optimize`."""
        cfg: CEMConfig = self.config  # type: ignore[assignment]
        r = cfg.action_repeat
        steps = math.ceil(horizon / r)
        if init_mean is None:
            mean = np.zeros((steps, action_dim))
        else:
            mean = np.clip(np.asarray(init_mean, dtype=np.float64)[::r], -1.0, 1.0)
        std = np.full((steps, action_dim), cfg.init_std)
        best_cost, best = np.inf, np.repeat(mean, r, axis=0)[:horizon]
        kept = np.empty((0, steps, action_dim))
        for it in range(cfg.iterations):
            noise = colored_noise(rng, cfg.samples, steps, action_dim, cfg.noise_beta)
            samples = np.clip(mean + std * noise, -1.0, 1.0)
            if it == 0 and cfg.include_mean:
                samples[0] = mean
            if it == 0 and cfg.include_zero:
                samples[-1] = 0.0
            samples[: len(kept)] = kept
            full = np.repeat(samples, r, axis=1)[:, :horizon]
            costs = _check_costs(cost_fn(full), cfg.samples)
            order = np.argsort(costs, kind="stable")
            if costs[order[0]] < best_cost:
                best_cost, best = float(costs[order[0]]), full[order[0]].copy()
            elites = samples[order[: cfg.elites]]
            kept = elites[: round(cfg.keep_elites * cfg.elites)].copy()
            a = cfg.momentum
            mean = a * mean + (1 - a) * elites.mean(axis=0)
            std = np.maximum(a * std + (1 - a) * elites.std(axis=0), cfg.min_std)
        return OptimizeResult(
            actions=best,
            mean=np.repeat(mean, r, axis=0)[:horizon],
            cost=best_cost,
            evaluations=cfg.samples * cfg.iterations,
        )

    def initial_samples(
        self, horizon: int, action_dim: int, rng: np.random.Generator
    ) -> np.ndarray:
        """See :meth:`Optimizer.initial_samples`."""
        cfg: CEMConfig = self.config  # type: ignore[assignment]
        r = cfg.action_repeat
        noise = colored_noise(rng, cfg.samples, math.ceil(horizon / r), action_dim, cfg.noise_beta)
        return np.repeat(np.clip(cfg.init_std * noise, -1.0, 1.0), r, axis=1)[:, :horizon]


@dataclass(frozen=True)
class MPPIConfig(OptimizerConfig):
    """Model-predictive path integral settings (VP2's second planner).

    Attributes:
        temperature: Softness of the cost weighting, relative to the spread of the costs of
            each iteration (costs are min-max normalised first, so it is scale-free).
        correlation: AR(1) coefficient of the sampling noise along the horizon; smooth noise
            explores pushes better than white noise (0 = white).
    """

    name: str = "mppi"
    temperature: float = 0.1
    correlation: float = 0.6

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.temperature <= 0:
            raise ConfigError(f"mppi temperature must be positive, got {self.temperature}")
        if not 0.0 <= self.correlation < 1.0:
            raise ConfigError(f"mppi correlation must be in [0, 1), got {self.correlation}")


@OPTIMIZERS.register("mppi")
class MPPI(Optimizer):
    """Model-predictive path integral control with temporally correlated noise.

    Williams et al. 2017; correlated noise as in PDDM (Nagabandi et al. 2019) and VP2
    (Tian et al. 2023).

    Each iteration perturbs the mean with AR(1) noise and moves the mean to the
    exponentially cost-weighted average of the samples. The plan is the final mean.
    """

    config_class = MPPIConfig

    def optimize(
        self,
        cost_fn: CostFn,
        horizon: int,
        action_dim: int,
        rng: np.random.Generator,
        init_mean: np.ndarray | None = None,
    ) -> OptimizeResult:
        """See :meth:`Optimizer.optimize`."""
        cfg: MPPIConfig = self.config  # type: ignore[assignment]
        if init_mean is None:
            mean = np.zeros((horizon, action_dim))
        else:
            mean = np.clip(np.asarray(init_mean, dtype=np.float64), -1.0, 1.0)
        best_cost = np.inf
        for _ in range(cfg.iterations):
            noise = ar1_noise(rng, cfg.samples, horizon, action_dim, cfg.correlation)
            samples = np.clip(mean + cfg.init_std * noise, -1.0, 1.0)
            costs = _check_costs(cost_fn(samples), cfg.samples)
            finite = np.isfinite(costs)
            if not finite.any():
                continue
            best_cost = min(best_cost, float(costs[finite].min()))
            lo, hi = costs[finite].min(), costs[finite].max()
            z = (costs - lo) / max(hi - lo, 1e-12)
            w = np.where(finite, np.exp(-z / cfg.temperature), 0.0)
            w /= w.sum()
            mean = np.einsum("n,nha->ha", w, samples)
        return OptimizeResult(
            actions=mean.copy(),
            mean=mean,
            cost=best_cost,
            evaluations=cfg.samples * cfg.iterations,
        )

    def initial_samples(
        self, horizon: int, action_dim: int, rng: np.random.Generator
    ) -> np.ndarray:
        """See :meth:`Optimizer.initial_samples`."""
        cfg: MPPIConfig = self.config  # type: ignore[assignment]
        noise = ar1_noise(rng, cfg.samples, horizon, action_dim, cfg.correlation)
        return np.clip(cfg.init_std * noise, -1.0, 1.0)


def optimizer_from_dict(data: dict[str, Any], source: str) -> OptimizerConfig:
    """Typed config of the optimizer named by ``data['name']``; unknown keys are errors."""
    from foresight.config import from_dict

    optimizer = OPTIMIZERS.lookup(str(data.get("name")), source)
    return from_dict(optimizer.config_class, data, f"{source}: 'optimizer'")


def build_optimizer(config: OptimizerConfig) -> Optimizer:
    """The optimizer a config describes."""
    return OPTIMIZERS[config.name](config)
