"""Video Pixel Network (seed 003): raster/colour causality, exact fast sampling, learning."""

from __future__ import annotations

import math

import pytest
import torch

from foresight.batch import ACTIONS, FRAMES, STATES
from foresight.config import to_dict
from foresight.errors import ConfigError
from foresight.models import build_model, config_from_dict, load_model_config
from foresight.models.vpn import VideoPixelNetwork
from foresight.models.vpn_net import LayerConds
from foresight.training import DistContext, Precision, TrainStep
from foresight.training.memory import saved_activation_bytes

#: A small VPN: 8x8 frames, one encoder and two decoder blocks, 16 intensity bins.
SMALL = {
    "image_size": 8,
    "context_frames": 2,
    "future_frames": 2,
    "channels": 4,
    "encoder_blocks": 1,
    "decoder_blocks": 2,
    "lstm_channels": 8,
    "top_channels": 12,
    "levels": 16,
    "input_kernel": 5,
}


def small_model(name: str = "vpn", train: dict | None = None, **over) -> VideoPixelNetwork:
    data = {**to_dict(load_model_config(name)), **SMALL, **over}
    data["train"] = {**data["train"], **(train or {})}
    torch.manual_seed(0)
    model = build_model(config_from_dict(data))
    assert isinstance(model, VideoPixelNetwork)
    return model


def random_batch(model: VideoPixelNetwork, seed: int = 0, batch: int = 2) -> dict:
    c = model.config
    g = torch.Generator().manual_seed(seed)
    size = (batch, c.window, 3, c.image_size, c.image_size)
    return {
        FRAMES: torch.randint(0, 256, size, generator=g, dtype=torch.uint8),
        STATES: torch.rand(batch, c.window, 2, generator=g) * 0.5 - 0.25,
        ACTIONS: torch.rand(batch, c.window - 1, 2, generator=g) * 2 - 1,
    }


def raster_index(size: int) -> torch.Tensor:
    """``(3, size, size)``: each sub-pixel's position in the R->G->B raster order."""
    return torch.arange(size * size * 3).view(size, size, 3).permute(2, 0, 1)


# --- the dependency structure ----------------------------------------------------------------


@pytest.mark.parametrize("block", ["rmb", "relu"])
def test_a_sub_pixel_never_changes_its_own_or_earlier_logits(block):
    """Seed 003, Sect. 2: x_tijc depends only on earlier frames, pixels and colours."""
    model = small_model(block=block).eval()
    batch = random_batch(model, batch=1)
    size, order = model.config.image_size, raster_index(model.config.image_size)
    with torch.no_grad():
        base, _ = model.logits(batch)  # (1, T, 3, L, H, W)
        for t, c, i, j in [(0, 0, 0, 0), (0, 1, 3, 4), (0, 2, 3, 4), (1, 0, 5, 0), (1, 2, 7, 7)]:
            frames = batch[FRAMES].clone()
            tc = model.config.context_frames
            frames[0, tc + t, c, i, j] = 255 - frames[0, tc + t, c, i, j]
            logits, _ = model.logits({**batch, FRAMES: frames})
            changed = (logits != base)[0, t].any(dim=1)  # (3, H, W) of frame t
            k = int(order[c, i, j])
            assert not changed[order <= k].any(), (t, c, i, j)
            if k < 3 * size * size - 1:
                assert changed[order > k].any(), "a later sub-pixel should see it"
            if t == 0:  # the next frame sees it too, through the encoder and the LSTM
                assert (logits != base)[0, 1].any()


def test_the_baseline_decoder_does_not_see_the_frame_it_predicts():
    model = small_model("vpn_baseline").eval()
    assert not model.config.autoregressive and model.decoder.input is None
    batch = random_batch(model, batch=1)
    tc = model.config.context_frames
    frames = batch[FRAMES].clone()
    frames[0, tc] = 255 - frames[0, tc]
    with torch.no_grad():
        base, _ = model.logits(batch)
        logits, _ = model.logits({**batch, FRAMES: frames})
    assert torch.equal(logits[:, 0], base[:, 0])  # nothing of its own frame
    assert not torch.equal(logits[:, 1], base[:, 1])  # but the next frame sees it


# --- sampling --------------------------------------------------------------------------------


@pytest.mark.parametrize("block", ["rmb", "relu"])
def test_fast_sampling_gives_exactly_the_naive_samples(block):
    """The cached raster evaluation computes the same sums as the full decoder; in float64 the
    rounding differences (~1e-16) cannot move an inverse-CDF draw, so the samples are equal."""
    model = small_model(block=block).double().eval()
    g = torch.Generator().manual_seed(1)
    size = model.config.image_size
    frames = torch.rand(2, 2, 3, size, size, generator=g, dtype=torch.float64)
    states = torch.rand(2, 2, 2, generator=g, dtype=torch.float64) * 0.5 - 0.25
    actions = torch.rand(2, 3, 2, generator=g, dtype=torch.float64) * 2 - 1
    inputs = (frames, states, actions)
    fast = model.rollout(*inputs, num_samples=3, generator=torch.Generator().manual_seed(7))
    naive = model.rollout(
        *inputs, num_samples=3, generator=torch.Generator().manual_seed(7), sampler="naive"
    )
    assert fast.shape == (2, 3, 2, 3, size, size)
    assert torch.equal(fast, naive)
    # Not vacuous: samples differ between draws, and frames are not constant.
    assert not torch.equal(fast[:, 0], fast[:, 1]) and fast.std() > 0.05


def test_samples_are_bin_centres_and_follow_the_model():
    """Sampled values are the centres of the bins; at a near-deterministic model, its mode."""
    model = small_model(levels=4).eval()
    size = model.config.image_size
    with torch.no_grad():  # push every logit towards bin 2 (of 4)
        model.decoder.out.bias.view(3, 4)[:] = torch.tensor([0.0, 0.0, 40.0, 0.0])
    frames = torch.rand(1, 2, 3, size, size)
    out = model.rollout(
        frames, torch.zeros(1, 2, 2), torch.zeros(1, 3, 2), 2, generator=torch.Generator()
    )
    centre = (2 * 64 + 31.5) / 255  # bin 2 holds intensities 128..191
    torch.testing.assert_close(out, torch.full_like(out, centre))


def test_unknown_sampler_is_a_clear_error():
    model = small_model().eval()
    size = model.config.image_size
    with pytest.raises(ConfigError, match="unknown VPN sampler 'x'"):
        model.rollout(
            torch.rand(1, 2, 3, size, size), torch.zeros(1, 2, 2), torch.zeros(1, 2, 2), sampler="x"
        )


# --- memory: per-layer conditioning, checkpointed blocks --------------------------------------


def all_layers_at_once(model: VideoPixelNetwork, h: torch.Tensor, v: torch.Tensor) -> list:
    """The decoder conditioning as one convolution for every layer (the original formula)."""
    total = model.context(h) + model.vector(v)[:, :, None, None]
    return list(total.split(model.splits, dim=1))


@pytest.mark.parametrize("name", ["vpn", "vpn_baseline"])
def test_per_layer_conditioning_equals_the_one_convolution_of_every_layer(name, monkeypatch):
    model = small_model(name)
    g = torch.Generator().manual_seed(3)
    h = torch.randn(3, model.config.lstm_channels, 8, 8, generator=g)
    v = torch.randn(3, model.config.cond_dim, generator=g)
    lazy = model._decoder_conds(h, v)
    assert isinstance(lazy, LayerConds) and len(lazy) == len(model.splits)
    assert isinstance(lazy[1:], LayerConds) and len(lazy[1:]) == len(model.splits) - 1
    for new, old in zip(lazy, all_layers_at_once(model, h, v), strict=True):
        torch.testing.assert_close(new, old, rtol=1e-5, atol=1e-6)
    # The logits and loss of a batch are those of the original formula, and so are gradients.
    batch = random_batch(model)
    loss = model.loss(batch)[0]
    (grad,) = torch.autograd.grad(loss, model.context.weight)
    logits = model.logits(batch)[0]
    monkeypatch.setattr(VideoPixelNetwork, "_decoder_conds", all_layers_at_once)
    old_loss = model.loss(batch)[0]
    (old_grad,) = torch.autograd.grad(old_loss, model.context.weight)
    torch.testing.assert_close(logits, model.logits(batch)[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(loss, old_loss, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(grad, old_grad, rtol=1e-5, atol=1e-7)
    assert loss > 0 and grad.abs().sum() > 0


def test_state_dict_keys_do_not_depend_on_checkpointing():
    """Old checkpoints load unchanged: the flag adds no parameter or buffer."""
    plain, ckpt = small_model(), small_model(checkpoint_blocks=True)
    assert plain.state_dict().keys() == ckpt.state_dict().keys()
    assert "context.weight" in plain.state_dict() and not plain.config.checkpoint_blocks
    ckpt.load_state_dict(plain.state_dict())


@pytest.mark.parametrize("name", ["vpn", "vpn_baseline"])
def test_checkpointed_blocks_give_the_same_loss_and_gradients_and_save_less(name):
    plain = small_model(name)
    ckpt = small_model(name, checkpoint_blocks=True)
    batch = random_batch(plain)
    losses, grads = [], []
    for model in (plain, ckpt):
        loss = model.loss(batch)[0]
        loss.backward()
        losses.append(loss)
        grads.append({k: p.grad for k, p in model.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1], rtol=0, atol=0)
    for key, grad in grads[0].items():
        torch.testing.assert_close(grads[1][key], grad, rtol=1e-5, atol=1e-7, msg=key)
    # Not vacuous: the checkpointed forward keeps far fewer tensors for backward.
    saved = [saved_activation_bytes(m, batch) for m in (plain, ckpt)]
    assert saved[1] < 0.8 * saved[0]
    # Outside training (evaluation, sampling) the blocks simply run.
    with torch.no_grad():
        assert torch.equal(ckpt.eval().logits(batch)[0], plain.eval().logits(batch)[0])


# --- loss, likelihood, config ----------------------------------------------------------------


def test_validation_reports_the_nll_over_256_intensities():
    model = small_model(levels=16).eval()
    with torch.no_grad():
        measures = model.validation_step(random_batch(model))
    assert set(measures) == {"loss", "nll"}
    # Each of 16 bins spreads evenly over 16 raw values: + log 16 nats per dimension.
    assert measures["nll"] == pytest.approx(measures["loss"] + math.log(16), rel=1e-6)
    # At initialisation the prediction is near uniform: about log(levels) nats per bin.
    assert measures["loss"] == pytest.approx(math.log(16), rel=0.2)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"levels": 100}, "levels must divide 256"),
        ({"top_channels": 50}, "top_channels"),
        ({"channels": 2}, "channels"),
        ({"input_kernel": 4}, "input_kernel must be odd"),
        ({"encoder_dilations": []}, "encoder_dilations"),
    ],
)
def test_invalid_config_values_are_one_line_errors(over, match):
    data = {**to_dict(load_model_config("vpn")), **over}
    with pytest.raises(ConfigError, match=match):
        config_from_dict(data)


def test_paper_presets_have_the_papers_sizes():
    for name in ("vpn_paper", "vpn_baseline_paper"):
        c = load_model_config(name)
        assert (c.image_size, c.levels, c.channels) == (64, 256, 128)
        assert (c.encoder_blocks, c.decoder_blocks, c.block) == (8, 12, "rmb")
        assert (c.lstm_channels, c.top_channels) == (256, 1536)
        assert (c.context_frames, c.future_frames, c.optimizer) == (2, 10, "rmsprop")
    assert load_model_config("vpn_paper").autoregressive
    assert not load_model_config("vpn_baseline_paper").autoregressive
    cpu = load_model_config("vpn")
    assert cpu.image_size == 32 and cpu.plan.samples is not None


# --- learning --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def real_batch(real_windows) -> dict[str, torch.Tensor]:
    """Four 4-frame windows of the collected dataset at 16x16, from different episodes."""
    return real_windows(length=4, count=4, image_size=16, stride=7)


@pytest.mark.parametrize("name", ["vpn", "vpn_baseline"])
def test_tiny_vpn_overfits_real_frames(name, real_batch):
    """Trained by its own training step, the NLL of 4 real windows falls far below its start."""
    model = small_model(
        name,
        train={"lr": 3e-3, "warmup_steps": 5},
        image_size=16,
        channels=8,
        levels=64,
        top_channels=24,
    )
    step = TrainStep(model, Precision("cpu"), DistContext())
    torch.manual_seed(0)
    results = [step(real_batch, i) for i in range(100)]
    first, last = results[0].loss, results[-1].loss
    assert first == pytest.approx(math.log(64), rel=0.2)
    assert last < first / 3
