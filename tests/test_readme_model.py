"""The README's "Adding a model" example is a working model: it trains, learns and plans.

The model's code and YAML are taken from README.md as written, so the README cannot drift from
what a model needs: its loss, ``begin_rollout`` and ``imagine_step``, nothing else.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
import yaml

from foresight.cli import main
from foresight.models import MODELS, build_model, config_from_dict

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the README's "Adding a model" section."""
    text = README.read_text()
    section = text[text.index("## Adding a model\n") :]
    section = section[: section.index("\n## ", 1)]
    return re.findall(rf"```{language}\n(.*?)```", section, flags=re.S)


@pytest.fixture()
def nudge() -> Iterator[type]:
    """The README's model, registered while the test runs."""
    (code,) = readme_blocks("python")
    namespace: dict = {"__name__": "readme_nudge"}
    # dont_inherit: the README code runs as a user's file would, without this file's __future__.
    exec(compile(code, str(README), "exec", dont_inherit=True), namespace)
    try:
        yield namespace["Nudge"]
    finally:
        MODELS.remove("nudge")


def test_the_readme_model_rolls_out_through_the_shared_loop(nudge) -> None:
    config = config_from_dict({**yaml.safe_load(readme_blocks("yaml")[0]), "image_size": 16})
    torch.manual_seed(0)
    model = build_model(config).eval()
    assert isinstance(model, nudge)
    g = torch.Generator().manual_seed(0)
    frames = torch.rand(2, 2, 3, 16, 16, generator=g)
    states = torch.rand(2, 2, config.state_dim, generator=g)
    actions = torch.rand(2, 1 + 5, config.action_dim, generator=g) * 2 - 1
    with torch.no_grad():
        out = model.rollout(frames, states, actions, num_samples=3)
        picked = model.rollout(frames, states, actions, num_samples=3, decode_steps=[4, 0])
        # By hand: the model's own step from the last context frame, five times.
        x, expected = frames[:, -1], []
        for k in range(5):
            x = model.step(x, actions[:, 1 + k])
            expected.append(x)
    assert out.shape == (2, 3, 5, 3, 16, 16)
    torch.testing.assert_close(out[:, 1], torch.stack(expected, dim=1))
    torch.testing.assert_close(picked, out[:, :, [4, 0]])

    # The shared loop runs no step past the last frame asked for, and the last one it runs
    # does not feed its frame back.
    calls = []
    step = model.imagine_step

    def spy(state, k, generator, feed_back):
        calls.append((k, feed_back))
        return step(state, k, generator, feed_back)

    model.imagine_step = spy
    with torch.no_grad():
        model.rollout(frames, states, actions, num_samples=2, decode_steps=[2, 1])
    assert calls == [(0, True), (1, True), (2, False)]


def test_the_readme_model_trains_learns_and_plans(
    nudge, tmp_path, tiny_h5, capsys, short_suite
) -> None:
    preset = tmp_path / "nudge.yaml"
    preset.write_text(readme_blocks("yaml")[0])
    run = tmp_path / "run"
    overrides = [
        "image_size=16",
        "train.max_steps=60",
        "train.batch_size=8",
        "train.warmup_steps=5",
        "train.log_every=10",
        "train.eval_every=60",
        "train.eval_batches=1",
        "train.lr=3e-3",
    ]
    argv = ["train", "--config", str(preset), "--data", str(tiny_h5), "--out", str(run)]
    assert main([*argv, "--device", "cpu", "--no-progress", *overrides]) == 0
    lines = (run / "metrics.jsonl").read_text().splitlines()
    mse = [r["mse"] for r in map(json.loads, lines) if r.get("split") == "train"]
    assert mse[-1] < 0.5 * mse[0], mse  # it learns (its initial residual is noise)

    suite = short_suite()
    out = tmp_path / "plan"
    plan = ["plan", "--model", str(run / "checkpoint.pt"), "--suite", str(suite)]
    plan += ["--episodes", "1", "--out", str(out), "--device", "cpu", "--no-gifs"]
    tiny = ["optimizer.samples=8", "optimizer.iterations=1", "optimizer.elites=2"]
    capsys.readouterr()
    assert main([*plan, *tiny]) == 0, capsys.readouterr().err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 1
