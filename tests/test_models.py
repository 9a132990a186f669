"""The contract every registered video model keeps (run over ``foresight.models.MODELS``,
the presets that were models of their own: ``hvrnn``, ``vpn_baseline``, and the presets that
change a model's structure: :data:`STRUCTURAL_PRESETS`).

Each model is built from its own `cpu` preset with the sizes in ``TINY`` swapped in, for the
fields the model's config has. A new model whose widths use other field names should add them
to ``TINY`` (names, not models: no per-model branches here).
"""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from foresight.batch import ACTIONS, FRAMES, STATES, frames_as
from foresight.config import repo_root, to_dict
from foresight.models import (
    MODELS,
    VideoModel,
    build_model,
    config_from_dict,
    load_model,
    load_model_config,
    model_class,
    save_checkpoint,
)
from foresight.models.registry import RENAMED
from foresight.training import DistContext, Precision, TrainStep

#: Tiny sizes, applied to whichever of these fields a model's config has.
TINY = {
    "image_size": 16,
    "context_frames": 2,
    "future_frames": 3,
    "eval_future_frames": 4,
    "channels": 4,
    "g_dim": 16,
    "z_dim": 4,
    "rnn_size": 16,
    "predictor_layers": 1,
    "posterior_layers": 1,
    "prior_layers": 1,
    # Multi-scale GAN layouts (one entry per scale: 2 scales, 8 and 16 px).
    "g_widths": [[4], [4]],
    "g_kernels": [[3, 3], [3, 3]],
    "d_widths": [[4], [4]],
    "d_kernels": [[3], [3]],
    "d_fc": [[8], [8]],
    "crop_size": None,
    # Video Pixel Network: one block each side, narrow LSTM and top layer, 16 intensity bins.
    "encoder_blocks": 1,
    "decoder_blocks": 1,
    "lstm_channels": 8,
    "top_channels": 12,
    "levels": 16,
}
B, N, T = 2, 3, 4  # sequences, samples per sequence, future frames of a rollout

#: Presets that build a different network from their model's own preset (an output head, a
#: skip path), so the contract is checked on that structure too.
STRUCTURAL_PRESETS = ("svg_lp_cdna", "svg_prime", "vrnn_fast_skip", "vrnn_fast_cdna")
#: Published models that are a configuration of a registered family, by preset name.
NAMED_VARIANTS = {"svg_prime": "svg_lp"}
#: Registered models, presets that once were models, and the structural presets.
NAMES = sorted({*MODELS, *RENAMED, *STRUCTURAL_PRESETS})


def class_of(name: str) -> type[VideoModel]:
    """The model class a registered name or a preset builds."""
    return model_class(load_model_config(name).model)


def tiny_model(name: str, seed: int = 0) -> VideoModel:
    preset = to_dict(load_model_config(name))
    fields = {f.name for f in dataclasses.fields(class_of(name).config_class)}
    config = config_from_dict({**preset, **{k: v for k, v in TINY.items() if k in fields}})
    torch.manual_seed(seed)
    return build_model(config)


def make_batch(model: VideoModel, batch: int = B, seed: int = 0) -> dict[str, torch.Tensor]:
    c = model.config
    g = torch.Generator().manual_seed(seed)
    length = c.window
    frames = torch.rand(batch, length, 3, c.image_size, c.image_size, generator=g)
    return {
        FRAMES: frames_as(frames, type(model).frame_dtype),
        STATES: torch.rand(batch, length, c.state_dim, generator=g) * 0.5 - 0.25,
        ACTIONS: torch.rand(batch, length - 1, c.action_dim, generator=g) * 2 - 1,
    }


def rollout_inputs(model: VideoModel, seed: int = 1) -> tuple[torch.Tensor, ...]:
    """Context frames ``(B, Tc, ...)``, context states, and actions for ``T`` future steps."""
    c = model.config
    g = torch.Generator().manual_seed(seed)
    tc = c.context_frames
    frames = torch.rand(B, tc, 3, c.image_size, c.image_size, generator=g)
    states = torch.rand(B, tc, c.state_dim, generator=g) * 0.5 - 0.25
    actions = torch.rand(B, tc - 1 + T, c.action_dim, generator=g) * 2 - 1
    return frames, states, actions


def seeded_rollout(model: VideoModel, inputs: tuple[torch.Tensor, ...], seed: int = 0, **kw):
    with torch.no_grad():
        return model.rollout(*inputs, generator=torch.Generator().manual_seed(seed), **kw)


def train_steps(model: VideoModel, steps: int = 2) -> None:
    """A few of the model's own training steps (past LR warm-up), so weights and
    normalisation statistics leave their initial values."""
    model.train()
    step = TrainStep(model, Precision("cpu"), DistContext())
    for i in range(steps):
        step(make_batch(model, seed=i), 10**6 + i)
    model.eval()


def test_registry_has_the_issue_models():
    assert {"copy_last", "svg_lp", "svg_fp", "svg_det"} <= set(MODELS)


@pytest.mark.parametrize(("old", "new"), sorted(RENAMED.items()))
def test_a_checkpoint_of_a_model_that_is_a_preset_now_loads_unchanged(old, new, tmp_path):
    """``hvrnn`` and ``vpn_baseline`` were classes that only carried defaults; their runs load."""
    model = tiny_model(old).eval()
    assert model.config.model == new
    path = save_checkpoint(tmp_path / "now.pt", model)
    payload = torch.load(path, weights_only=True)
    payload["model"], payload["config"]["model"] = old, old  # as the earlier version wrote it
    torch.save(payload, tmp_path / "then.pt")
    loaded = load_model(tmp_path / "then.pt")
    assert type(loaded) is type(model) and loaded.config == model.config
    inputs = rollout_inputs(model)
    torch.testing.assert_close(seeded_rollout(loaded, inputs), seeded_rollout(model, inputs))


def test_every_model_config_file_loads_and_names_its_model():
    paths = sorted((repo_root() / "configs" / "model").glob("*.yaml"))
    names = {load_model_config(p).model for p in paths}
    assert names == set(MODELS), "every registered model needs a preset, every preset a model"
    for path in paths:  # <model>.yaml, or <model>_<variant>.yaml (_paper, _cdna, ...)
        model = load_model_config(path).model
        # hvrnn.yaml configures vrnn: a renamed model keeps its presets' names; a published
        # variant that is a configuration of a family keeps its paper's name.
        stems = [model, *(old for old, new in RENAMED.items() if new == model)]
        stems += [name for name, family in NAMED_VARIANTS.items() if family == model]
        assert any(path.stem == s or path.stem.startswith(f"{s}_") for s in stems), path.name


@pytest.mark.parametrize("name", NAMES)
def test_rollout_shapes_range_and_decode_steps(name):
    model = tiny_model(name).eval()
    inputs = rollout_inputs(model)
    full = seeded_rollout(model, inputs, num_samples=N)
    s = model.config.image_size
    assert full.shape == (B, N, T, 3, s, s)
    assert torch.isfinite(full).all()
    assert full.min() >= 0 and full.max() <= 1
    # decode_steps picks frames (in the order asked) without changing them.
    picked = seeded_rollout(model, inputs, num_samples=N, decode_steps=[3, 1])
    assert picked.shape == (B, N, 2, 3, s, s)
    torch.testing.assert_close(picked, full[:, :, [3, 1]], rtol=0, atol=1e-5)
    first = seeded_rollout(model, inputs, num_samples=N, decode_steps=[0])
    torch.testing.assert_close(first, full[:, :, :1], rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", NAMES)
def test_loss_is_finite_and_backward_gives_finite_grads(name):
    model = tiny_model(name).train()
    loss, terms = model.loss(make_batch(model))
    assert loss.ndim == 0 and torch.isfinite(loss)
    assert terms and all(isinstance(v, float) and v == v for v in terms.values())
    if not model.trainable:
        return
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0


@pytest.mark.parametrize("name", [n for n in NAMES if class_of(n).trainable])
def test_optimizers_cover_every_parameter_once_and_train_step_updates_them(name):
    model = tiny_model(name)
    specs = model.optimizers()
    owned = [id(p) for spec in specs.values() for p in spec.params]
    assert len(owned) == len(set(owned)), "a parameter is in two optimizers"
    assert set(owned) == {id(p) for p in model.parameters() if p.requires_grad}
    before = [p.detach().clone() for p in model.parameters()]
    result = TrainStep(model, Precision("cpu"), DistContext())(make_batch(model), 10**6)
    assert isinstance(result.loss, float) and result.loss == result.loss
    assert all(v == v for v in (*result.terms.values(), *result.grad_norm.values()))
    assert len(result.lr) == len(result.grad_norm) == len(specs)
    changed = [not torch.equal(a, p) for a, p in zip(before, model.parameters(), strict=True)]
    assert all(changed), "the training step left some parameters untouched"


@pytest.mark.parametrize("name", [n for n in NAMES if class_of(n).trainable])
def test_a_step_in_channels_last_layout_matches_the_default_layout(name):
    plain = tiny_model(name)
    fast = tiny_model(name)
    train = dataclasses.replace(fast.config.train, channels_last=True)
    fast.config = dataclasses.replace(fast.config, train=train)
    batch = make_batch(plain)
    steps = []
    for model in (plain, fast):
        torch.manual_seed(1)  # the same noise for both (latents, dropout)
        steps.append(TrainStep(model, Precision("cpu"), DistContext())(batch, 10**6))
    a, b = steps
    assert any(p.is_contiguous(memory_format=torch.channels_last) and p.ndim == 4
               for p in fast.parameters())  # fmt: skip
    assert b.loss == pytest.approx(a.loss, rel=1e-4, abs=1e-6)
    # Gradients, not weights: Adam's first update is about lr * sign(g), which float
    # rounding flips where a gradient is ~0.
    for p, q in zip(plain.parameters(), fast.parameters(), strict=True):
        if p.grad is not None:
            scale = float(p.grad.abs().max()) + 1e-12
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4 * scale)


@pytest.mark.parametrize("name", [n for n in NAMES if class_of(n).trainable])
def test_a_loaded_model_runs_in_its_layout_and_rolls_out_as_in_the_default_one(name, tmp_path):
    model = tiny_model(name).eval()
    train = dataclasses.replace(model.config.train, channels_last=True)
    model.config = dataclasses.replace(model.config, train=train)
    loaded = load_model(save_checkpoint(tmp_path / "ckpt.pt", model))
    assert any(p.is_contiguous(memory_format=torch.channels_last) and p.ndim == 4
               for p in loaded.parameters())  # fmt: skip
    assert all(p.is_contiguous() for p in model.parameters())  # saving left it as it was
    inputs = rollout_inputs(model)
    torch.testing.assert_close(
        seeded_rollout(loaded, inputs, num_samples=N),
        seeded_rollout(model, inputs, num_samples=N),
        rtol=1e-4,
        atol=1e-4,
    )


@pytest.mark.parametrize("name", [n for n in NAMES if class_of(n).trainable])
def test_training_never_reads_future_states_but_reads_observed_ones(name):
    """Planning cannot know future states, so training must not lean on them either."""
    model = tiny_model(name)
    batch = make_batch(model)
    context = model.config.context_frames
    other = {**batch, STATES: batch[STATES].clone()}
    other[STATES][:, context:] += 0.1
    torch.manual_seed(0)
    a, _ = model.loss(batch)
    torch.manual_seed(0)
    b, _ = model.loss(other)
    assert torch.equal(a, b)
    other[STATES][:, :context] += 0.1
    torch.manual_seed(0)
    c, _ = model.loss(other)
    assert not torch.equal(a, c)


@pytest.mark.parametrize("name", NAMES)
def test_validation_step_gives_finite_measures(name):
    model = tiny_model(name).eval()
    with torch.no_grad():
        measures = model.validation_step(make_batch(model))
    assert measures and all(isinstance(v, float) and v == v for v in measures.values())


@pytest.mark.parametrize("name", NAMES)
def test_checkpoint_round_trip_gives_identical_rollouts(name, tmp_path):
    model = tiny_model(name)
    if model.trainable:
        train_steps(model)
    model.eval()
    path = save_checkpoint(tmp_path / "ckpt.pt", model)
    loaded = load_model(path)
    assert type(loaded) is type(model) and loaded.config == model.config
    inputs = rollout_inputs(model)
    assert torch.equal(
        seeded_rollout(model, inputs, num_samples=N), seeded_rollout(loaded, inputs, num_samples=N)
    )


@pytest.mark.parametrize("name", NAMES)
def test_rollout_is_deterministic_under_a_seed(name):
    model = tiny_model(name).eval()
    inputs = rollout_inputs(model)
    a = seeded_rollout(model, inputs, seed=5, num_samples=N)
    b = seeded_rollout(model, inputs, seed=5, num_samples=N)
    assert torch.equal(a, b)


@pytest.mark.parametrize("name", NAMES)
def test_samples_differ_exactly_when_the_model_is_stochastic(name):
    model = tiny_model(name).eval()
    inputs = rollout_inputs(model)
    a = seeded_rollout(model, inputs, seed=0, num_samples=2)
    b = seeded_rollout(model, inputs, seed=1, num_samples=2)
    stochastic = not torch.equal(a, b)
    samples_differ = (a[:, 0] - a[:, 1]).abs().amax() > 1e-6
    assert samples_differ == stochastic


@pytest.mark.parametrize("name", NAMES)
def test_an_action_changes_the_frames_it_leads_to_and_no_earlier_one(name):
    model = tiny_model(name)
    if model.trainable:
        train_steps(model)
    model.eval()
    frames, states, actions = rollout_inputs(model)
    k = 2  # future step whose action is changed: actions[:, Tc - 1 + k] makes future frame k
    other = actions.clone()
    other[:, model.config.context_frames - 1 + k] *= -1
    a = seeded_rollout(model, (frames, states, actions), num_samples=N)
    b = seeded_rollout(model, (frames, states, other), num_samples=N)
    assert torch.equal(a[:, :, :k], b[:, :, :k])  # the same computation, bit for bit
    if model.trainable:
        # Far above float32 noise (~1e-7 on [0, 1] frames), and only the action differs.
        assert (a[:, :, k] - b[:, :, k]).abs().amax() > 1e-5


@pytest.mark.parametrize("name", NAMES)
def test_the_tiny_form_trains_through_the_cli_to_the_end(name, tmp_path, tiny_h5, capsys):
    # Every model's run ends with its summary line, rollout validation or not.
    from foresight.cli import main

    config = to_dict(tiny_model(name).config)
    config["train"].update(
        batch_size=2, max_steps=2, warmup_steps=1, log_every=1, eval_every=2, eval_batches=1,
        eval_samples=1,
    )  # fmt: skip
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(config))
    run = tmp_path / "run"
    argv = ["train", "--config", str(path), "--data", str(tiny_h5), "--out", str(run)]
    assert main([*argv, "--device", "cpu", "--no-progress"]) == 0
    err = " ".join(capsys.readouterr().err.split())
    steps = 2 if class_of(name).trainable else 0
    assert "Traceback" not in err and f"step {steps}: wrote" in err
    assert (run / "checkpoint.pt").is_file() and (run / "best.pt").is_file()
