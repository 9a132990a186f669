"""Multi-scale adversarial model (Mathieu et al. 2016): learning, crops, noise, D, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
import yaml

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.config import to_dict
from foresight.models import build_model, config_from_dict, load_model_config
from foresight.models.checkpoint import read_checkpoint
from foresight.models.gan import MultiScaleGAN
from foresight.training import DistContext, Precision, TrainOptions, TrainStep, train

#: Small layouts: 3 scales (8, 16, 32 px at 32x32) of a few channels each.
SMALL = {
    "image_size": 32,
    "context_frames": 2,
    "future_frames": 2,
    "history_frames": 2,
    "g_widths": [[8], [8, 16], [16, 16]],
    "g_kernels": [[3, 3], [3, 3, 3], [3, 3, 3]],
    "d_widths": [[4], [4, 8], [4, 8]],
    "d_kernels": [[3], [3, 3], [5, 5]],
    "d_fc": [[16], [16], [16]],
    "noise_channels": 2,
}


def small_config(**over) -> dict:
    data = {**to_dict(load_model_config("gan")), **SMALL, **over}
    data["train"] = {**data["train"], "warmup_steps": 0, "lr": 3e-3}
    return data


def small_model(**over) -> MultiScaleGAN:
    torch.manual_seed(0)
    model = build_model(config_from_dict(small_config(**over)))
    assert isinstance(model, MultiScaleGAN)
    return model


def random_batch(model: MultiScaleGAN, seed: int = 0, batch: int = 2) -> dict[str, torch.Tensor]:
    c = model.config
    g = torch.Generator().manual_seed(seed)
    return {
        FRAMES: torch.rand(batch, c.window, 3, c.image_size, c.image_size, generator=g),
        STATES: torch.rand(batch, c.window, 2, generator=g) * 0.5 - 0.25,
        ACTIONS: torch.rand(batch, c.window - 1, 2, generator=g) * 2 - 1,
    }


def rollout(model: MultiScaleGAN, batch: dict[str, torch.Tensor], seed: int = 0, **kw):
    tc = model.config.context_frames
    with torch.no_grad():
        return model.rollout(
            batch[FRAMES][:, :tc],
            batch[STATES][:, :tc],
            batch[ACTIONS],
            generator=torch.Generator().manual_seed(seed),
            **kw,
        )


@pytest.fixture(scope="module")
def real_batch(real_windows) -> dict[str, torch.Tensor]:
    """Eight 4-frame windows of the collected dataset, from different episodes."""
    return real_windows(length=4, count=8, image_size=32, stride=4)


def test_small_gan_learns_a_real_batch_with_the_adversary_on(real_batch):
    model = small_model()
    frames = real_batch[FRAMES]  # (8, 4, 3, 32, 32)
    copy_prev = float(((frames[:, 1:] - frames[:, :-1]) ** 2).mean())  # x_t := x_{t-1}
    copy_last = float(((frames[:, 2:] - frames[:, 1:2]) ** 2).mean())  # the copy_last model
    step = TrainStep(model, Precision("cpu"), DistContext())
    torch.manual_seed(0)
    logged = [step(real_batch, i) for i in range(200)]
    first, last = logged[0].terms, logged[-1].terms
    assert {"lp", "gdl", "mse", "g_adv", "d_loss", "d_real", "d_fake", "d_acc"} <= set(last)
    assert set(logged[-1].lr) == {"lr_generator", "lr_discriminator"}
    assert last["lp"] < first["lp"] / 5 and last["gdl"] < first["gdl"]
    # Both players moved: the discriminator learned to tell (some) real from generated.
    assert last["d_loss"] < first["d_loss"] and last["d_real"] > last["d_fake"]
    model.eval()
    with torch.no_grad():
        _, terms = model.loss(real_batch)
    # GDL trades squared error for sharp edges, so the margin is smaller than SVG's (measured:
    # 0.64 of copy-previous teacher-forced after 200 steps; 0.42 without the GDL term).
    assert terms["mse"] < 0.75 * copy_prev
    out = rollout(model, real_batch, num_samples=2)  # its own predictions fed back
    assert float(((out - frames[:, None, 2:]) ** 2).mean()) < 0.75 * copy_last


def test_loss_is_the_weighted_sum_of_its_terms():
    model = small_model(adv_weight=0.3, lp_weight=2.0, gdl_weight=0.5)
    torch.manual_seed(0)
    loss, t = model.loss(random_batch(model))
    assert loss.item() == pytest.approx(2.0 * t["lp"] + 0.5 * t["gdl"] + 0.3 * t["g_adv"], 1e-5)


def test_without_adversary_there_is_no_discriminator_to_train():
    model = small_model(adv_weight=0.0)
    assert model.discriminator is None and set(model.optimizers()) == {"generator"}
    result = TrainStep(model, Precision("cpu"), DistContext())(random_batch(model), 0)
    assert "g_adv" not in result.terms and "d_loss" not in result.terms
    assert result.loss == pytest.approx(result.terms["lp"] + result.terms["gdl"], rel=1e-5)


def test_crop_trained_generator_runs_on_whole_frames():
    model = small_model(crop_size=16, g_widths=[[4], [4]], g_kernels=[[3, 3], [3, 3]],
                        d_widths=[[4], [4]], d_kernels=[[3], [3]], d_fc=[[8], [8]])  # fmt: skip
    seen: list[torch.Tensor] = []
    model.generator.register_forward_hook(lambda mod, args, out: seen.append(args[0].detach()))
    batch = random_batch(model)
    torch.manual_seed(0)
    TrainStep(model, Precision("cpu"), DistContext())(batch, 0)
    # The generator trained on 16x16 patches: each is a piece of its sequence's frames.
    history = seen[0]  # (B * 3 steps, 2 frames * 3 channels, 16, 16)
    assert history.shape == (2 * 3, 6, 16, 16)
    first = history[0, -3:] * 0.5 + 0.5  # step 0's input frame is the sequence's frame 0
    full = batch[FRAMES][0, 0]
    found = [
        (y, x)
        for y in range(17)
        for x in range(17)
        if torch.allclose(full[:, y : y + 16, x : x + 16], first, atol=1e-6)
    ]
    assert len(found) == 1
    # ... and runs on whole 32x32 frames (validation scores centre patches for D).
    model.eval()
    out = rollout(model, batch, num_samples=2)
    assert out.shape == (2, 2, 2, 3, 32, 32) and out.min() >= 0 and out.max() <= 1
    with torch.no_grad():
        assert all(v == v for v in model.validation_step(batch).values())


@pytest.mark.parametrize("noise_channels", [2, 0])
def test_samples_differ_exactly_when_there_is_noise(noise_channels):
    model = small_model(noise_channels=noise_channels).eval()
    out = rollout(model, random_batch(model), num_samples=2)
    assert out.shape[:3] == (2, 2, 2)
    if noise_channels:
        assert (out[:, 0] - out[:, 1]).abs().amax() > 1e-4
    else:
        assert torch.equal(out[:, 0], out[:, 1])


@pytest.mark.parametrize("conditional", [True, False])
def test_conditional_discriminator_sees_the_past_frames(conditional):
    model = small_model(conditional_discriminator=conditional).eval()
    assert model.discriminator is not None
    history, target, cond, _ = model._steps(random_batch(model))
    other = history.clone()
    other[:, :3] = torch.rand_like(other[:, :3]) * 2 - 1  # a different oldest past frame
    with torch.no_grad():
        a = model.discriminator(model._pyramid(target), history, cond)
        b = model.discriminator(model._pyramid(target), other, cond)
    changed = any((x - y).abs().amax() > 1e-6 for x, y in zip(a, b, strict=True))
    assert changed == conditional


def test_history_longer_than_the_context_repeats_the_first_frame():
    model = small_model(history_frames=3).eval()
    batch = random_batch(model)
    padded = {**batch, FRAMES: torch.cat([batch[FRAMES][:, :1], batch[FRAMES]], dim=1)}
    padded[STATES] = torch.cat([batch[STATES][:, :1], batch[STATES]], dim=1)
    padded[ACTIONS] = torch.cat([torch.zeros_like(batch[ACTIONS][:, :1]), batch[ACTIONS]], dim=1)
    # 2 context frames padded to 3 by the model = 3 context frames padded by the planner.
    three = build_model(config_from_dict({**to_dict(model.config), "context_frames": 3}))
    three.load_state_dict(model.state_dict())
    a = rollout(model, batch, num_samples=1)
    b = rollout(three.eval(), padded, num_samples=1)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)


def test_bad_layouts_are_config_errors():
    from foresight.errors import ConfigError

    with pytest.raises(ConfigError, match="one entry per scale"):
        config_from_dict(small_config(d_widths=[[4], [4]]))
    with pytest.raises(ConfigError, match="divisible"):
        config_from_dict(small_config(image_size=34))
    with pytest.raises(ConfigError, match="leave nothing"):
        config_from_dict(small_config(d_kernels=[[9], [3, 3], [5, 5]]))


def test_resume_is_bit_for_bit(tmp_path: Path, tiny_h5: Path) -> None:
    data = small_config(
        crop_size=16, eval_future_frames=4, g_widths=[[4], [4]], g_kernels=[[3, 3], [3, 3]],
        d_widths=[[4], [4]], d_kernels=[[3], [3]], d_fc=[[8], [8]],
    )  # fmt: skip
    data["train"].update(
        batch_size=4, max_steps=10, warmup_steps=4, log_every=1, eval_every=7,
        eval_batches=1, eval_samples=2,
    )  # fmt: skip
    cfg = tmp_path / "gan_tiny.yaml"
    cfg.write_text(yaml.safe_dump(data))
    config = load_model_config(cfg)
    whole, split = tmp_path / "whole", tmp_path / "split"
    train(TrainOptions(config, tiny_h5, whole, "cpu", progress=False))
    cut = config_from_dict({**data, "train": {**data["train"], "max_steps": 7}})
    train(TrainOptions(cut, tiny_h5, split, "cpu", progress=False))
    train(TrainOptions(config, tiny_h5, split, "cpu", resume=True, progress=False))
    a, b = read_checkpoint(whole / "checkpoint.pt"), read_checkpoint(split / "checkpoint.pt")
    assert a["step"] == b["step"] == 10
    assert set(a["optimizers"]) == {"generator", "discriminator"}
    for key, tensor in a["state_dict"].items():
        assert torch.equal(tensor, b["state_dict"][key]), key
    for name in ("generator", "discriminator"):
        assert a["optimizers"][name]["state"], name
        for pid, state in a["optimizers"][name]["state"].items():
            for k, v in state.items():
                assert torch.equal(v, b["optimizers"][name]["state"][pid][k]), (name, pid, k)

    def logged(run: Path) -> list[dict]:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        drop = ("seq_per_s", "train_seconds")
        return [
            {k: v for k, v in r.items() if k not in drop}
            for r in map(json.loads, lines)
            if r.get("split") == "train"
        ]

    records = logged(whole)
    assert records == logged(split) and len(records) == 10
    assert {"d_loss", "g_adv", "lp", "gdl", "d_real", "d_fake", "d_acc"} <= set(records[0])
