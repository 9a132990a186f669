"""The training-memory estimate (meta device) against what real tensors save on CPU."""

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


@pytest.mark.parametrize("name", ["vrnn_fast", "vpn", "svg_lp", "gan"])
def test_the_estimate_counts_what_a_real_forward_saves(name: str) -> None:
    config = with_batch(name, 2)
    torch.manual_seed(0)
    model = build_model(config)
    c = config
    batch = {
        FRAMES: frames_as(torch.rand(2, c.window, 3, c.image_size, c.image_size),
                          type(model).frame_dtype),
        STATES: torch.rand(2, c.window, c.state_dim) * 0.4 - 0.2,
        ACTIONS: torch.rand(2, c.window - 1, c.action_dim) * 2 - 1,
    }  # fmt: skip
    real = saved_activation_bytes(model, batch)
    estimate = estimate_training_memory(config)
    assert real > 0 and estimate.activations == pytest.approx(real, rel=0.15)
    params = sum(p.numel() * 4 for p in model.parameters())
    assert estimate.params == estimate.grads == params
    assert estimate.optimizer in (params, 2 * params)  # RMSprop's one moment, Adam's two
    assert estimate.total == params * 2 + estimate.optimizer + estimate.activations


def test_activations_grow_with_the_batch_and_split_over_processes() -> None:
    one = estimate_training_memory(with_batch("vrnn_fast", 4))
    two = estimate_training_memory(with_batch("vrnn_fast", 8))
    assert two.activations == pytest.approx(2 * one.activations, rel=0.05)
    split = estimate_training_memory(with_batch("vrnn_fast", 8), processes=2)
    assert split.batch == 4 and split.activations == one.activations
