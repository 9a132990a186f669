"""The training-memory estimate (fake tensors) against what real tensors save on CPU."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from foresight.batch import ACTIONS, FRAMES, STATES, frames_as
from foresight.models import build_model, load_model_config
from foresight.training.memory import estimate_training_memory, saved_activation_bytes


def with_batch(name: str, batch: int):
    config = load_model_config(name)
    return dataclasses.replace(config, train=dataclasses.replace(config.train, batch_size=batch))


def real_batch(config, model, batch: int = 2) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    c = config
    return {
        FRAMES: frames_as(torch.rand(batch, c.window, 3, c.image_size, c.image_size),
                          type(model).frame_dtype),
        STATES: torch.rand(batch, c.window, c.state_dim) * 0.4 - 0.2,
        ACTIONS: torch.rand(batch, c.window - 1, c.action_dim) * 2 - 1,
    }  # fmt: skip


@pytest.mark.parametrize("amp", [None, torch.bfloat16], ids=["fp32", "bf16"])
@pytest.mark.parametrize("name", ["vrnn_fast", "vpn", "svg_lp", "gan"])
def test_the_estimate_counts_what_a_real_forward_saves(name: str, amp) -> None:
    config = with_batch(name, 2)
    torch.manual_seed(0)
    model = build_model(config)
    real = saved_activation_bytes(model, real_batch(config, model), amp)
    estimate = estimate_training_memory(config, amp=amp)
    assert real > 0 and estimate.activations == pytest.approx(real, rel=0.15)
    assert estimate.precision == ("fp32" if amp is None else "bf16")
    params = sum(p.numel() * 4 for p in model.parameters())
    assert estimate.params == estimate.grads == params
    assert estimate.optimizer in (params, 2 * params)  # RMSprop's one moment, Adam's two
    assert estimate.total == params * 2 + estimate.optimizer + estimate.activations


def test_bf16_saves_less_than_float32() -> None:
    """Not a unit mix-up: the convolutions' saved inputs really are half the size."""
    config = with_batch("svg_lp", 4)
    bf16 = estimate_training_memory(config).activations
    fp32 = estimate_training_memory(config, amp=None).activations
    assert 0.4 * fp32 < bf16 < 0.9 * fp32


def test_vpn_block_checkpointing_is_counted_and_saves_most_activations() -> None:
    """Checkpointed blocks keep their inputs only: what the estimate counts, real tensors save."""
    config = dataclasses.replace(
        with_batch("vpn", 2), encoder_blocks=4, decoder_blocks=4, checkpoint_blocks=True
    )
    torch.manual_seed(0)
    model = build_model(config)
    real = saved_activation_bytes(model, real_batch(config, model), torch.bfloat16)
    estimate = estimate_training_memory(config).activations
    assert estimate == pytest.approx(real, rel=0.15)
    plain = estimate_training_memory(dataclasses.replace(config, checkpoint_blocks=False))
    assert estimate < 0.7 * plain.activations


def test_activations_grow_with_the_batch_and_split_over_processes() -> None:
    one = estimate_training_memory(with_batch("vrnn_fast", 4))
    two = estimate_training_memory(with_batch("vrnn_fast", 8))
    assert two.activations == pytest.approx(2 * one.activations, rel=0.05)
    split = estimate_training_memory(with_batch("vrnn_fast", 8), processes=2)
    assert split.batch == 4 and split.activations == one.activations
