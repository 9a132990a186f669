from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.cli import main
from foresight.config import to_dict
from foresight.data.dataset import SequenceDataset
from foresight.errors import CheckpointError, ForesightError
from foresight.models import (
    MODELS,
    ModelConfig,
    VideoModel,
    build_model,
    load_model,
    register_model,
)
from foresight.models.base import OptimizerSpec, TrainConfig, repeat_samples
from foresight.models.checkpoint import read_checkpoint
from foresight.models.layers import ConvLSTMCell, LSTMStack
from foresight.models.registry import load_model_config
from foresight.rundir import settings_differences
from foresight.training import (
    DistContext,
    Optimization,
    Precision,
    TrainOptions,
    TrainStep,
    pick_precision,
    train,
)
from foresight.training.resume import BestScore
from foresight.training.state import EpochBatches, preserved_rng


# --------------------------------------------------------------------------- test-only model
@dataclass(frozen=True)
class TinyConvConfig(ModelConfig):
    """A fixture model's config.

    Attributes:
        width: Hidden channels.
        nan_after: When > 0, the loss is NaN from this call of ``loss`` on.
    """

    model: str = "_tiny_conv"
    width: int = 8
    nan_after: int = 0


class TinyConv(VideoModel):
    """Test fixture, not a paper model: next frame = frame + conv([frame, action, state])."""

    config_class = TinyConvConfig

    def __init__(self, config: TinyConvConfig) -> None:
        super().__init__(config)
        inputs = 3 + config.action_dim + config.state_dim
        self.net = nn.Sequential(
            nn.Conv2d(inputs, config.width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(config.width, 3, 3, padding=1),
        )
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def step(self, frame: torch.Tensor, action: torch.Tensor, state: torch.Tensor):
        h, w = frame.shape[-2:]
        cond = torch.cat([action, state], -1)[..., None, None].expand(-1, -1, h, w)
        return frame + self.net(torch.cat([frame, cond], 1))

    def loss(
        self, batch: dict[str, torch.Tensor], step: int | None = None
    ) -> tuple[torch.Tensor, dict[str, float]]:
        f, s, a = batch[FRAMES], batch[STATES], batch[ACTIONS]
        # Input noise from the global generator, so resuming must restore it exactly.
        x = f[:, :-1] + 0.01 * torch.randn_like(f[:, :-1])
        pred = self.step(x.flatten(0, 1), a.flatten(0, 1), s[:, :-1].flatten(0, 1))
        mse = torch.mean((pred.view_as(f[:, 1:]) - f[:, 1:]) ** 2)
        self.calls += 1
        if 0 < self.config.nan_after <= int(self.calls):
            mse = mse * float("nan")
        return mse, {"mse": float(mse.detach())}

    def begin_rollout(self, context_frames, context_states, actions, num_samples, generator):
        c = context_frames.shape[1]
        frame = repeat_samples(context_frames[:, -1], num_samples)
        noise = torch.randn(frame.shape, generator=generator, device=frame.device)
        return {
            "frame": frame + 0.01 * noise,
            "state": repeat_samples(context_states[:, -1], num_samples),
            "actions": repeat_samples(actions[:, c - 1 :], num_samples),
        }

    def imagine_step(self, state, k, generator, feed_back):
        frame = self.step(state["frame"], state["actions"][:, k], state["state"]).clamp(0, 1)
        state["frame"] = frame
        return frame


@dataclass(frozen=True)
class TinyCriticConfig(TinyConvConfig):
    """A two-optimizer fixture's config.

    Attributes:
        critic_lr: Peak learning rate of the critic (its own schedule: no warm-up).
        adv_weight: Weight of the critic's score in the generator's loss.
    """

    model: str = "_tiny_critic"
    critic_lr: float = 1e-2
    adv_weight: float = 0.05


class TinyCritic(TinyConv):
    """Test fixture with two optimizers: a critic scores frames, the generator fools it.

    The critic steps first on ``real - fake`` scores, then the generator on MSE minus the
    critic's score of its prediction: the shape of a GAN's alternating updates.
    """

    config_class = TinyCriticConfig

    def __init__(self, config: TinyCriticConfig) -> None:
        super().__init__(config)
        self.critic = nn.Conv2d(3, 1, 3, padding=1)

    def optimizers(self) -> dict[str, OptimizerSpec]:
        t, c = self.config.train, self.config
        gen = torch.optim.Adam(self.net.parameters(), lr=t.lr)
        critic = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr, betas=(0.5, 0.9))
        return {
            "generator": OptimizerSpec(gen, t.lr, t.warmup_steps, t.grad_clip),
            "critic": OptimizerSpec(critic, c.critic_lr, 0, 1.0),
        }

    def train_step(self, batch: dict[str, torch.Tensor], opt: Optimization):
        f, s, a = batch[FRAMES], batch[STATES], batch[ACTIONS]
        with opt.autocast():
            x = f[:, :-1] + 0.01 * torch.randn_like(f[:, :-1])
            pred = self.step(x.flatten(0, 1), a.flatten(0, 1), s[:, :-1].flatten(0, 1))
            real = f[:, 1:].flatten(0, 1)
            critic_loss = self.critic(pred.detach()).mean() - self.critic(real).mean()
        critic_value = opt.backward_step("critic", critic_loss)
        with opt.autocast():
            mse = torch.mean((pred - real) ** 2)
            gen_loss = mse - self.config.adv_weight * self.critic(pred).mean()
        loss = opt.backward_step("generator", gen_loss)
        return loss, {"mse": float(mse.detach()), "critic": critic_value}


class TinyBytes(TinyConv):
    """Test fixture asking for uint8 frames: its loss checks it gets exact 8-bit intensities."""

    frame_dtype = torch.uint8

    def loss(self, batch, step=None):
        frames = batch[FRAMES]
        assert frames.dtype == torch.uint8, frames.dtype
        return super().loss({**batch, FRAMES: frames.float() / 255}, step)


@pytest.fixture(autouse=True, scope="module")
def _tiny_conv_registered():
    """Registered only while this module's tests run, so other modules see the real registry."""
    register_model("_tiny_conv")(TinyConv)
    register_model("_tiny_critic")(TinyCritic)
    register_model("_tiny_bytes")(TinyBytes)
    yield
    for name in ("_tiny_conv", "_tiny_critic", "_tiny_bytes"):
        MODELS.remove(name)


# --------------------------------------------------------------------------- helpers
def tiny_config(
    tmp_path: Path, name: str = "tiny.yaml", model: str = "_tiny_conv", **train_overrides
) -> Path:
    train_block = {
        "batch_size": 4,
        "lr": 3e-3,
        "warmup_steps": 2,
        "max_steps": 12,
        "log_every": 2,
        "eval_every": 6,
        "eval_batches": 1,
        "eval_samples": 2,
        **train_overrides,
    }
    data = {
        "model": model,
        "image_size": 16,
        "context_frames": 2,
        "future_frames": 3,
        "eval_future_frames": 6,
        "train": train_block,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def options(config: Path, data: Path, out: Path, resume: bool = False, **kw) -> TrainOptions:
    return TrainOptions(load_model_config(config), data, out, "cpu", resume, progress=False, **kw)


def records(run: Path, split: str) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r.get("split") == split]


def tiny_svg_config(tmp_path: Path, name: str, **train_overrides) -> Path:
    """The preset of a registered SVG model, shrunk to test size."""
    data = to_dict(load_model_config(name))
    sizes = {"channels": 4, "g_dim": 16, "rnn_size": 16, "z_dim": 2, "predictor_layers": 1}
    data.update({k: v for k, v in sizes.items() if k in data})
    data.update(image_size=16, future_frames=3, eval_future_frames=6)
    data["train"].update(
        batch_size=4, warmup_steps=2, log_every=2, eval_every=2, eval_batches=1, eval_samples=2
    )
    data["train"].update(train_overrides)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "COLUMNS": "200"}


# --------------------------------------------------------------------------- units
def test_warmup_is_linear_then_constant() -> None:
    adam = torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    assert [OptimizerSpec(adam, 1.0, 4).lr_at(s) for s in range(6)] == [
        0.25, 0.5, 0.75, 1.0, 1.0, 1.0
    ]  # fmt: skip
    assert OptimizerSpec(adam, 2e-3, 0).lr_at(0) == 2e-3


def test_decay_is_a_half_cosine_after_warmup_then_held() -> None:
    adam = torch.optim.Adam([nn.Parameter(torch.zeros(1))])
    spec = OptimizerSpec(adam, 1.0, warmup_steps=2, decay_steps=4, final_lr_ratio=0.1)
    rates = [spec.lr_at(s) for s in range(9)]
    assert rates[:3] == [0.5, 1.0, 1.0]
    assert rates[4] == pytest.approx(0.55)  # halfway down: (1 + 0.1) / 2
    assert rates[6:] == pytest.approx([0.1] * 3)
    assert all(a >= b for a, b in zip(rates[1:], rates[2:], strict=False))
    # A model's optimizers take the schedule from its train: block, with their own changes.
    train = TrainConfig(lr=1e-3, warmup_steps=5, decay_steps=10, final_lr_ratio=0.0)
    other = OptimizerSpec.from_train(adam, train, lr=2.0, warmup_steps=0)
    assert (other.lr, other.warmup_steps, other.decay_steps) == (2.0, 0, 10)
    assert other.lr_at(10) == pytest.approx(0.0) and other.lr_at(0) == 2.0


def test_epoch_batches_resume_mid_epoch_and_shard_ranks() -> None:
    data = list(range(23))
    order = EpochBatches(data, batch_size=4, seed=3)
    first = order.epoch(0)
    assert order.per_epoch == 5 and all(len(b) == 4 for b in first)
    assert order.epoch(0, start=2) == first[2:]
    assert order.epoch(1) != first  # reshuffled every epoch
    ranks = [EpochBatches(data, 4, 3, rank=r, world_size=2).epoch(0) for r in range(2)]
    seen = [i for batches in ranks for b in batches for i in b]
    assert len(seen) == len(set(seen)) == 16


def test_preserved_rng_leaves_generators_untouched() -> None:
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    with preserved_rng():
        torch.rand(100)
    assert torch.equal(torch.rand(3), expected)


def test_settings_differences_names_dotted_keys() -> None:
    old = {"model": "a", "train": {"lr": 1.0, "seed": 0}}
    assert settings_differences(old, {"model": "a", "train": {"lr": 2.0, "seed": 0}}) == [
        "train.lr"
    ]


# --------------------------------------------------------------------------- training
def test_loss_decreases_and_run_folder_is_complete(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_config(tmp_path, max_steps=40, eval_every=20, log_every=5, lr=1e-2)
    run = tmp_path / "run"
    result = train(options(cfg, tiny_h5, run))
    assert result.step == 40
    logged = records(run, "train")
    assert [r["step"] for r in logged] == list(range(5, 41, 5))
    assert {"loss", "lr", "mse", "seq_per_s", "grad_norm"} <= set(logged[0])
    assert logged[-1]["loss"] < 0.5 * logged[0]["loss"]
    valid = records(run, "valid")
    assert [r["step"] for r in valid] == [20, 40]
    assert len(valid[0]["ssim_mean_per_step"]) == valid[0]["future_frames"] == 6
    assert valid[0]["ssim_best"] >= valid[0]["ssim_mean"]
    assert valid[-1]["psnr_mean"] > valid[0]["psnr_mean"] - 1.0
    for step in (20, 40):
        assert (run / "samples" / f"step_{step:06d}.png").stat().st_size > 0
        assert (run / "samples" / f"step_{step:06d}.gif").stat().st_size > 0
    best = read_checkpoint(run / "best.pt")
    assert best["best"]["metric"] == "ssim_mean"
    assert best["step"] == best["best"]["step"] in (20, 40)
    model = load_model(run / "checkpoint.pt")
    assert model.config.train.max_steps == 40 and int(model.calls) > 0


def test_the_logged_learning_rate_decays_to_its_floor(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_config(tmp_path, max_steps=12, decay_steps=6, final_lr_ratio=0.25)
    run = tmp_path / "run"
    train(options(cfg, tiny_h5, run))
    rates = [r["lr"] for r in records(run, "train") if "lr" in r]
    assert len(rates) == 6 and rates[0] == pytest.approx(3e-3)
    assert all(a > b for a, b in zip(rates[:3], rates[1:4], strict=True))
    assert rates[-2:] == pytest.approx([3e-3 * 0.25] * 2)


def test_time_limit_stops_with_a_validated_checkpoint(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_config(tmp_path, max_steps=40, eval_every=20, log_every=5)
    run = tmp_path / "run"
    # Every step takes longer than a microsecond: the run stops after its first step.
    result = train(options(cfg, tiny_h5, run, time_limit_s=1e-6))
    assert result.step == 1
    assert [r["step"] for r in records(run, "valid")] == [1]
    assert read_checkpoint(run / "checkpoint.pt")["step"] == 1
    assert records(run, "train")[-1] == {"step": 1, "split": "train", "event": "time_limit"}
    # The limit counts training time summed over resumes: resuming under it adds nothing,
    # resuming without it trains on to max_steps.
    assert train(options(cfg, tiny_h5, run, resume=True, time_limit_s=1e-6)).step == 1
    assert train(options(cfg, tiny_h5, run, resume=True)).step == 40


def test_resume_accepts_a_new_planning_budget(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_config(tmp_path, max_steps=2, eval_every=2)
    run = tmp_path / "run"
    train(options(cfg, tiny_h5, run))
    # Training never reads the plan: budget, so a run may resume under a new one ...
    data = yaml.safe_load(cfg.read_text())
    data["plan"] = {"samples": 8, "iterations": 1}
    data["train"]["max_steps"] = 4
    budget = tmp_path / "budget.yaml"
    budget.write_text(yaml.safe_dump(data))
    assert train(options(budget, tiny_h5, run, resume=True)).step == 4
    assert load_model(run / "checkpoint.pt").config.plan.samples == 8
    # ... but not under a change to what a step computes.
    data["train"]["lr"] = 1.0
    budget.write_text(yaml.safe_dump(data))
    with pytest.raises(CheckpointError, match=r"different config \(train.lr differ"):
        train(options(budget, tiny_h5, run, resume=True))


def test_resume_is_bit_for_bit(tmp_path: Path, tiny_h5: Path) -> None:
    # 15 batches per epoch: the cut at step 17 is mid-epoch, after an epoch boundary.
    cfg = tiny_config(tmp_path, max_steps=20, eval_every=17, log_every=1, batch_size=8)
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(options(cfg, tiny_h5, whole))
    cut = options(cfg, tiny_h5, split)
    train(TrainOptions(_with_steps(cut.config, 17), tiny_h5, split, "cpu", progress=False))
    # A run killed after step 18 leaves log lines past its checkpoint (the last one cut short);
    # resuming drops them.
    with (split / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"step": 18, "split": "train", "loss": -1.0}) + '\n{"step": 1')
    train(options(cfg, tiny_h5, split, resume=True))
    a, b = read_checkpoint(whole / "checkpoint.pt"), read_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 20 and a["data"] == b["data"] == {"epoch": 1, "batch": 5}
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    for pid, state in a["optimizers"]["model"]["state"].items():
        for k, v in state.items():
            assert torch.equal(v, b["optimizers"]["model"]["state"][pid][k]), (pid, k)
    assert a["data"] == b["data"]
    losses_a = [(r["step"], r["loss"]) for r in records(whole, "train")]
    losses_b = [(r["step"], r["loss"]) for r in records(split, "train")]
    assert losses_a == losses_b and len(losses_a) == 20
    assert records(whole, "valid") == records(split, "valid")


def test_windows_from_memory_or_file_train_to_the_same_bits(tmp_path: Path, tiny_h5: Path) -> None:
    # The first half reads windows from the file, the resumed half from the split in memory;
    # the result is the run that held the split in memory throughout.
    held = tiny_config(tmp_path, "held.yaml", max_steps=8, eval_every=4, batch_size=8)
    read = tiny_config(tmp_path, "read.yaml", max_steps=4, eval_every=4, batch_size=8,
                       data_memory_gb=0.0)  # fmt: skip
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(options(held, tiny_h5, whole))
    train(options(read, tiny_h5, split))
    train(options(held, tiny_h5, split, resume=True))
    a, b = read_checkpoint(whole / "checkpoint.pt"), read_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 8
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key


def test_deterministic_kernels_change_nothing_on_cpu_and_leave_torch_as_it_was(
    tmp_path: Path, tiny_h5: Path
) -> None:
    plain = tiny_config(tmp_path, "plain.yaml", max_steps=3, eval_every=3)
    exact = tiny_config(tmp_path, "exact.yaml", max_steps=3, eval_every=3, deterministic=True)
    before = (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark)
    train(options(plain, tiny_h5, tmp_path / "plain"))
    train(options(exact, tiny_h5, tmp_path / "exact"))
    assert (torch.are_deterministic_algorithms_enabled(), torch.backends.cudnn.benchmark) == before
    a = read_checkpoint(tmp_path / "plain" / "checkpoint.pt")["state_dict"]
    b = read_checkpoint(tmp_path / "exact" / "checkpoint.pt")["state_dict"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_with_two_optimizers_is_bit_for_bit(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_config(
        tmp_path, model="_tiny_critic", max_steps=10, eval_every=7, log_every=1, warmup_steps=4
    )
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(options(cfg, tiny_h5, whole))
    cut = options(cfg, tiny_h5, split)
    train(TrainOptions(_with_steps(cut.config, 7), tiny_h5, split, "cpu", progress=False))
    train(options(cfg, tiny_h5, split, resume=True))
    a, b = read_checkpoint(whole / "checkpoint.pt"), read_checkpoint(split / "checkpoint.pt")
    assert set(a["optimizers"]) == set(a["scalers"]) == {"generator", "critic"}
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    for name in ("generator", "critic"):
        for pid, state in a["optimizers"][name]["state"].items():
            for k, v in state.items():
                assert torch.equal(v, b["optimizers"][name]["state"][pid][k]), (name, pid, k)
    logged = records(whole, "train")
    untimed = [
        {k: v for k, v in r.items() if k not in ("seq_per_s", "train_seconds")} for r in logged
    ]
    assert untimed == [
        {k: v for k, v in r.items() if k not in ("seq_per_s", "train_seconds")}
        for r in records(split, "train")
    ]
    # Each optimizer follows its own schedule: the generator warms up, the critic does not.
    assert [r["lr_generator"] for r in logged[:5]] == pytest.approx(
        [7.5e-4, 1.5e-3, 2.25e-3, 3e-3, 3e-3]
    )
    assert {r["lr_critic"] for r in logged} == {1e-2}
    assert {"grad_norm_generator", "grad_norm_critic", "critic", "mse"} <= set(logged[0])


def test_a_uint8_model_trains_and_validates_on_8_bit_frames(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_config(tmp_path, model="_tiny_bytes", max_steps=4, eval_every=4)
    run = tmp_path / "run"
    train(options(cfg, tiny_h5, run))
    (valid,) = records(run, "valid")
    assert valid["loss"] > 0 and "ssim_mean" in valid


def test_best_checkpoint_follows_the_configured_metric(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_config(
        tmp_path, max_steps=6, eval_every=2, eval_rollout=False, best_metric="mse",
        best_mode="min",
    )  # fmt: skip
    run = tmp_path / "run"
    result = train(options(cfg, tiny_h5, run))
    valid = records(run, "valid")
    assert [r["step"] for r in valid] == [2, 4, 6]
    assert all("loss" in r and "mse" in r and "ssim_mean" not in r for r in valid)
    best = read_checkpoint(run / "best.pt")["best"]
    assert best["metric"] == "mse"
    assert best["value"] == min(r["mse"] for r in valid)
    # What the run returns is what it wrote, typed.
    assert result.valid is not None and result.valid.line() == valid[-1]
    assert result.best_score == BestScore(best["metric"], best["value"], best["step"])

    bad = tiny_config(tmp_path, "bad.yaml", max_steps=2, best_metric="nll")
    with pytest.raises(ForesightError, match="best_metric 'nll' is not a validation measure"):
        train(options(bad, tiny_h5, tmp_path / "bad"))
    assert not (tmp_path / "bad" / "checkpoint.pt").exists()


def _with_steps(config: ModelConfig, steps: int) -> ModelConfig:
    from foresight.training import with_overrides

    return with_overrides(config, max_steps=steps)


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_config(tmp_path, max_steps=20, eval_every=3)
    data = yaml.safe_load(cfg.read_text())
    data["nan_after"] = 6  # calls: steps 1-3, the validation loss, step 4, then NaN in step 5
    cfg.write_text(yaml.safe_dump(data))
    run = tmp_path / "run"
    with pytest.raises(ForesightError, match="loss became nan at step 5") as err:
        train(options(cfg, tiny_h5, run))
    assert "\n" not in str(err.value) and "(step 3) is kept" in str(err.value)
    ckpt = read_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 3
    assert all(torch.isfinite(t).all() for t in ckpt["state_dict"].values())
    assert records(run, "train")[-1]["event"] == "non_finite_loss"


def test_untrainable_model_is_validated_and_saved(tmp_path: Path, tiny_h5: Path, capsys) -> None:
    run = tmp_path / "copy"
    assert main(["train", "--config", "copy_last", "--data", str(tiny_h5), "--out", str(run)]) == 0
    (valid,) = records(run, "valid")
    assert valid["step"] == 0 and 0 < valid["ssim_mean"] <= 1
    # copy_last ignores its samples: best-of-N is mean-of-N.
    assert valid["ssim_best"] == pytest.approx(valid["ssim_mean"])
    assert load_model(run / "checkpoint.pt").name == "copy_last"
    assert (run / "best.pt").is_file()
    assert "valid episodes have at most" in capsys.readouterr().err


# --------------------------------------------------------------------------- bad input
def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    return err[-1]


def test_bad_inputs_give_one_line_errors(tmp_path: Path, tiny_h5: Path, capsys) -> None:
    cfg = tiny_config(tmp_path, max_steps=2)
    base = ["train", "--config", str(cfg), "--device", "cpu", "--no-progress"]

    assert main([*base, "--data", str(tmp_path / "missing.h5"), "--out", str(tmp_path / "r")]) == 2
    assert "missing.h5 does not exist" in _error_line(capsys)

    bad = tmp_path / "bad.yaml"
    bad.write_text(cfg.read_text() + "widht: 3\n")
    assert main(["train", "--config", str(bad), "--data", str(tiny_h5), "--out", "x"]) == 2
    assert "unknown key 'widht'" in _error_line(capsys)

    run = tmp_path / "run"
    assert main([*base, "--data", str(tiny_h5), "--out", str(run)]) == 0
    before = (run / "checkpoint.pt").read_bytes()
    assert main([*base, "--data", str(tiny_h5), "--out", str(run)]) == 2
    assert "pass --resume" in _error_line(capsys)
    assert (run / "checkpoint.pt").read_bytes() == before

    other = tiny_config(tmp_path, "other.yaml", max_steps=2, lr=1.0)
    argv = ["train", "--config", str(other), "--data", str(tiny_h5), "--out", str(run), "--resume"]
    assert main(argv) == 2
    line = _error_line(capsys)
    assert "different config (train.lr differ" in line
    assert main([*argv[:2], "copy_last", *argv[3:]]) == 2
    assert "holds model '_tiny_conv', not 'copy_last'" in _error_line(capsys)
    assert (run / "checkpoint.pt").read_bytes() == before

    assert main([*base, "--data", str(tiny_h5), "--out", str(tmp_path / "new"), "--resume"]) == 2
    assert "drop --resume" in _error_line(capsys)


def test_resume_from_foreign_file_is_a_checkpoint_error(tmp_path: Path, tiny_h5: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable foresight checkpoint"):
        train(options(tiny_config(tmp_path), tiny_h5, run, resume=True))


# --------------------------------------------------------------------------- subprocesses
def test_cli_end_to_end(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_svg_config(tmp_path, "svg_det", max_steps=4, eval_every=4)
    run = tmp_path / "run"
    argv = ["train", "--config", str(cfg), "--data", str(tiny_h5), "--out", str(run)]
    done = subprocess.run(
        [sys.executable, "-m", "foresight.cli", *argv, "--max-steps", "3", "--seed", "5"],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "step 3: wrote" in done.stderr
    ckpt = read_checkpoint(run / "checkpoint.pt")
    assert ckpt["model"] == "svg_det"
    assert ckpt["step"] == 3 and ckpt["config"]["train"]["seed"] == 5
    assert [r["step"] for r in records(run, "valid")] == [3]
    assert load_model(run / "best.pt").config.channels == 4


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(torch.__file__).parent / "distributed").is_dir(),
    reason="torch.distributed.run is unavailable",
)
def test_torchrun_two_processes_on_cpu(tmp_path: Path, tiny_h5: Path) -> None:
    cfg = tiny_svg_config(tmp_path, "svg_lp", max_steps=4, batch_size=2)
    run = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "foresight.cli", "train", "--config", str(cfg), "--data", str(tiny_h5)]
    cmd += ["--out", str(run), "--device", "cpu", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x 2 process(es) (gloo)" in done.stderr
    ckpt = read_checkpoint(run / "checkpoint.pt")
    assert ckpt["step"] == 4 and ckpt["world_size"] == 2 and len(ckpt["rng"]) == 2
    # Ranks draw different noise, and each rank's generator state is kept for --resume.
    assert not torch.equal(ckpt["rng"][0]["torch"], ckpt["rng"][1]["torch"])
    logged = records(run, "train")
    assert [r["step"] for r in logged] == [2, 4]
    assert logged[0]["seq_per_s"] > 0 and "kl" in " ".join(logged[0])


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(torch.__file__).parent / "distributed").is_dir(),
    reason="torch.distributed.run is unavailable",
)
def test_torchrun_with_one_process_goes_through_the_process_group(
    tmp_path: Path, tiny_h5: Path
) -> None:
    # What a single GPU's NCCL check runs (benchmarks/gpu_smoke.sh), here on gloo.
    cfg = tiny_svg_config(tmp_path, "svg_det", max_steps=2, batch_size=2)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "1"]
    cmd += ["-m", "foresight.cli", "train", "--config", str(cfg), "--data", str(tiny_h5)]
    cmd += ["--out", str(tmp_path / "one"), "--device", "cpu", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "x 1 process(es) (gloo)" in done.stderr
    assert read_checkpoint(tmp_path / "one" / "checkpoint.pt")["world_size"] == 1


@pytest.mark.skipif(
    shutil.which("torchrun") is None and not (Path(torch.__file__).parent / "distributed").is_dir(),
    reason="torch.distributed.run is unavailable",
)
def test_a_batch_that_does_not_split_over_the_processes_is_refused(
    tmp_path: Path, tiny_h5: Path
) -> None:
    cfg = tiny_svg_config(tmp_path, "svg_det", max_steps=2, batch_size=3)
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    cmd += ["-m", "foresight.cli", "train", "--config", str(cfg), "--data", str(tiny_h5)]
    cmd += ["--out", str(tmp_path / "ddp"), "--device", "cpu", "--no-progress"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=subprocess_env(), timeout=60)
    assert done.returncode != 0
    assert "train.batch_size 3 is the batch of a whole step" in done.stderr
    assert not (tmp_path / "ddp" / "checkpoint.pt").exists()


def test_recurrent_state_stays_float32_under_bf16_autocast() -> None:
    torch.manual_seed(0)
    cell, stack = ConvLSTMCell(3, 4), LSTMStack(3, 8, 2, 5)
    x = torch.randn(2, 3, 6, 6)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h, (h2, c) = cell(x)
        h, (h2, c) = cell(x, (h.to(torch.bfloat16), c.to(torch.bfloat16)))
        y, (hs, cs) = stack(torch.randn(2, 7, 3))
    assert h.dtype == c.dtype == hs.dtype == cs.dtype == torch.float32
    assert y.shape == (2, 7, 5)
    # Outside autocast the cell is the plain float32 ConvLSTM, to the bit.
    i, f, o, g = cell.conv(torch.cat([x, torch.zeros(2, 4, 6, 6)], 1)).chunk(4, 1)
    c = torch.sigmoid(i) * torch.tanh(g) + torch.sigmoid(f) * 0.0
    assert torch.equal(cell(x)[1][1], c)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_mixed_precision_step_runs_the_cuda_code_path_on_cpu(
    dtype, tmp_path: Path, tiny_h5: Path
) -> None:
    # pick_precision only enables autocast on CUDA; built by hand, the same path runs on CPU.
    assert pick_precision("bf16", torch.device("cpu")) == Precision("cpu")
    precision = Precision("cpu", dtype)
    assert precision.needs_scaler == (dtype == torch.float16)
    config = load_model_config(tiny_svg_config(tmp_path, "svg_lp"))
    model = build_model(config)
    step = TrainStep(model, precision, DistContext())
    batch = next(
        iter(DataLoader(SequenceDataset(tiny_h5, config.window, image_size=config.image_size), 2))
    )
    before = [p.detach().clone() for p in model.parameters()]
    result = step(batch, 10)
    assert math.isfinite(result.loss) and math.isfinite(result.grad_norm["grad_norm"])
    assert "kl" in result.terms
    assert step.opt.scalers["model"].is_enabled() == precision.needs_scaler
    assert any(not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True))


# --------------------------------------------------------------------------- endings
def test_cli_summary_without_rollout_validation(tmp_path: Path, tiny_h5: Path, capsys) -> None:
    # Like vpn_paper: no PSNR/SSIM in the valid records; the last line shows what they have.
    cfg = tiny_config(
        tmp_path, max_steps=2, eval_every=2, eval_rollout=False, best_metric="mse",
        best_mode="min",
    )  # fmt: skip
    argv = ["train", "--config", str(cfg), "--data", str(tiny_h5), "--out", str(tmp_path / "r")]
    assert main([*argv, "--no-progress"]) == 0
    last = " ".join(capsys.readouterr().err.split()).rsplit("step 2: wrote", 1)[-1]
    assert "valid loss" in last and "mse" in last and "best mse" in last and "at step 2" in last
    assert "ssim" not in last


def test_ctrl_c_during_setup_says_so(tmp_path: Path, tiny_h5: Path, capsys, monkeypatch) -> None:
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("foresight.training.trainer.make_validation_set", interrupt)
    cfg = tiny_config(tmp_path, max_steps=2)
    run = tmp_path / "run"
    assert main(["train", "--config", str(cfg), "--data", str(tiny_h5), "--out", str(run)]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["interrupted before the first training step: run the same command again"]
    assert not run.exists()  # nothing was written before the interruption


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_an_interrupt_in_the_loop_saves_that_step_and_resume_continues_bit_for_bit(
    tmp_path: Path, tiny_h5: Path, sig: int
) -> None:
    """Ctrl-C (or a scheduler's SIGTERM) is held until the step in flight is done; that step
    is saved, and ``--resume`` goes on as if nothing had happened."""
    cfg = tiny_svg_config(tmp_path, "svg_det", max_steps=100_000, log_every=1, eval_every=50)
    run = tmp_path / "run"
    argv = ["train", "--config", str(cfg), "--data", str(tiny_h5), "--out", str(run)]
    proc = subprocess.Popen(
        [sys.executable, "-m", "foresight.cli", *argv, "--no-progress"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        # A shell's background jobs start with SIGINT ignored; give the child the default.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        env=subprocess_env(),
    )
    logged = 0
    deadline = time.time() + 120
    while logged < 6 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
        if (run / "metrics.jsonl").is_file():
            steps = [r["step"] for r in records(run, "train") if "loss" in r]
            logged = max(steps, default=0)
    os.killpg(proc.pid, sig)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    match = re.match(r"interrupted at step (\d+): add --resume .* checkpoint at step (\d+)$", last)
    assert match, last
    step = int(match[1])
    assert step >= logged >= 6 and int(match[2]) == step
    assert read_checkpoint(run / "checkpoint.pt")["step"] == step
    # Resumed for two more steps, it ends where a run that was never stopped ends (both in
    # processes like the first: the same torch threads, so the same float sums).
    more = ["--max-steps", str(step + 2), "--no-progress"]
    whole = tmp_path / "whole"
    for args in ([*argv, "--resume", *more], [*argv[:-1], str(whole), *more]):
        cli = [sys.executable, "-m", "foresight.cli", *args]
        done = subprocess.run(cli, capture_output=True, text=True, env=subprocess_env())
        assert done.returncode == 0, done.stderr
    a, b = read_checkpoint(run / "checkpoint.pt"), read_checkpoint(whole / "checkpoint.pt")
    assert a["step"] == b["step"] == step + 2
    for key, tensor in b["state_dict"].items():
        assert torch.equal(tensor, a["state_dict"][key]), key
