"""The report: well-formed HTML, images that exist, every cell a number or 'n/a: reason'."""

from __future__ import annotations

import base64
import json
import re
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from foresight.errors import ForesightError
from foresight.report import build_report, correlations, load_runs
from foresight.results import EVALUATION_FORMAT
from foresight.visualize import save_gif, save_png


def write_run(folder, label, success, psnr_curve, lpips=None, with_media=True, budget=None):
    folder.mkdir(parents=True)
    rng = np.random.default_rng(len(label))
    metrics = {
        "psnr": {"mean_of_n": psnr_curve, "best_of_n": [v + 1 for v in psnr_curve]},
        "ssim": {
            "mean_of_n": [v / 40 for v in psnr_curve],
            "best_of_n": [v / 38 for v in psnr_curve],
        },
    }
    unavailable = {"fvd": "no I3D weights given (--i3d PATH)"}
    if lpips is None:
        unavailable["lpips"] = "no LPIPS weights found"
    else:
        metrics["lpips"] = {"mean_of_n": lpips, "best_of_n": [v * 0.9 for v in lpips]}
    data = {
        "format": EVALUATION_FORMAT,
        "label": label,
        "model": "svg_lp",
        "prediction": {
            "metrics": metrics,
            "unavailable": unavailable,
            "protocol": "best-of-N and mean-of-N, N=3",
        },
        "control": {
            "suite": "easy",
            "success_rate": success,
            "successes": round(10 * success),
            "episodes": 10,
            "ci95": [max(0, success - 0.2), min(1, success + 0.2)],
            "mean_final_distance": 0.1 * (1 - success),
            "seconds_per_step": 0.5,
            "budget": {"samples": 200, "iterations": 3, "batch_size": 200, "num_samples": 1},
        },
    }
    if budget is not None:
        data["control"]["budget"] = budget
    if with_media:
        save_png(rng.integers(0, 255, (10, 20, 3), dtype=np.uint8), folder / "strip.png")
        save_gif(rng.integers(0, 255, (3, 8, 8, 3), dtype=np.uint8), folder / "ep.gif")
        data["prediction"]["strip"] = "strip.png"
        data["control"]["gifs"] = ["ep.gif"]
    (folder / "evaluation.json").write_text(json.dumps(data))
    return folder


@pytest.fixture
def runs(tmp_path):
    return [
        write_run(tmp_path / "a", "good", 0.9, [30.0, 28.0, 26.0], lpips=[0.1, 0.2, 0.3]),
        write_run(tmp_path / "b", "blurry", 0.2, [31.0, 29.0, 27.0], lpips=[0.3, 0.4, 0.5]),
        write_run(tmp_path / "c", "floor", 0.0, [25.0, 22.0, 20.0], lpips=[0.5, 0.6, 0.7]),
        write_run(tmp_path / "d", "no-lpips", 0.5, [27.0, 25.0, 24.0], with_media=False),
    ]


def test_html_is_well_formed_and_images_decode(runs, tmp_path):
    html_path, md_path = build_report(runs, tmp_path / "report")
    text = html_path.read_text()
    root = ET.fromstring(text.split("\n", 1)[1])  # drop the doctype; the rest must be XML-clean
    images = root.findall(".//img")
    assert len(images) >= 3 + 3 * 2  # curves + strip and gif for three runs
    for img in images:
        src = img.get("src")
        assert src.startswith("data:image/")
        payload = base64.b64decode(src.split(",", 1)[1])
        assert payload[:4] in (b"\x89PNG", b"GIF8")
    for link in re.findall(r"\]\(([^)]+)\)", md_path.read_text()):
        assert (md_path.parent / link).is_file(), link


def test_every_cell_is_a_number_or_explained(runs, tmp_path):
    html_path, _ = build_report(runs, tmp_path / "report")
    root = ET.fromstring(html_path.read_text().split("\n", 1)[1])
    rows = root.findall(".//table/tbody/tr")
    assert len(rows) == 4
    header = [th.text for th in root.findall(".//table/thead/tr/th")]
    assert header[-1] == "planner budget"
    for row in rows:
        assert row.findall("td")[-1].text == "200 x 3 (preset)"
        for cell in [td.text or "" for td in row.findall("td")][1:-1]:
            if cell.startswith("n/a: "):
                assert len(cell) > len("n/a: ")
            elif " to " in cell:
                lo, hi = cell.split(" to ")
                assert float(lo) <= float(hi)
            else:
                float(cell)
    at = header.index("LPIPS mean-of-N")
    lpips_cells = [td.text for td in rows[3].findall("td")][at : at + 2]
    assert all(c.startswith("n/a: no LPIPS weights") for c in lpips_cells)


def test_correlation_sentences_follow_the_numbers(runs):
    corr = {c["metric"]: c for c in correlations(load_runs(runs)) if c["task"] == "task success"}
    lp = corr["LPIPS mean-of-N"]
    assert lp["models"] == 3 and lp["rho"] == pytest.approx(-1.0)
    assert "roughly as task success does" in lp["sentence"]
    psnr = corr["PSNR mean-of-N"]
    assert psnr["models"] == 4
    assert psnr["rho"] == pytest.approx(0.4)
    by_distance = {
        c["metric"]: c for c in correlations(load_runs(runs)) if c["task"].startswith("final")
    }
    lp = by_distance["LPIPS mean-of-N"]  # lower LPIPS, shorter distance: both say "better"
    assert lp["rho"] == pytest.approx(1.0)
    assert "roughly as final distance to the goal does" in lp["sentence"]


def test_missing_or_foreign_runs_are_one_line_errors(tmp_path):
    with pytest.raises(ForesightError, match="foresight evaluate"):
        load_runs([tmp_path / "nothing"])
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "evaluation.json").write_text('{"format": "other"}')
    with pytest.raises(ForesightError, match="not a foresight evaluation"):
        load_runs([tmp_path / "x"])
    (tmp_path / "x" / "evaluation.json").write_text('{"format": "foresight-evaluation/9"}')
    with pytest.raises(ForesightError, match="does not read"):
        load_runs([tmp_path / "x"])


def test_version_1_runs_are_read_and_budgets_that_differ_are_noted(runs, tmp_path):
    data = json.loads((runs[0] / "evaluation.json").read_text())
    del data["control"]["budget"]
    data["format"] = "foresight-evaluation/1"
    (runs[0] / "evaluation.json").write_text(json.dumps(data))
    small = {"samples": 8, "iterations": 1, "batch_size": 200, "num_samples": 1}
    write_run(tmp_path / "e", "small-budget", 0.1, [26.0, 24.0, 23.0], budget=small)
    html_path, md_path = build_report([*runs, tmp_path / "e"], tmp_path / "report")
    root = ET.fromstring(html_path.read_text().split("\n", 1)[1])
    cells = {
        tr.findall("td")[0].text: tr.findall("td")[-1].text
        for tr in root.findall(".//table/tbody/tr")
    }
    assert cells["good"].startswith("n/a: not recorded")
    assert cells["small-budget"] == "8 x 1 (preset)"
    assert "different planner budgets" in md_path.read_text()


def test_long_reasons_are_cut_in_cells_and_given_in_full_once(runs, tmp_path):
    long = "no LPIPS weights: put alexnet-owt-7be5be79.pth in the hub cache, " + "x" * 80
    data = json.loads((runs[3] / "evaluation.json").read_text())
    data["prediction"]["unavailable"]["lpips"] = long
    (runs[3] / "evaluation.json").write_text(json.dumps(data))
    _, md_path = build_report(runs, tmp_path / "report")
    text = md_path.read_text()
    assert "n/a: no LPIPS weights (see notes)" in text
    assert text.count(long) == 1
    sentences = [c["sentence"] for c in correlations(load_runs(runs))]
    assert len(sentences) == len(set(sentences))


def _edit(folder, **control_or_prediction):
    """Change keys of a run's ``prediction``/``control`` blocks (``prediction__strip=...``)."""
    path = folder / "evaluation.json"
    data = json.loads(path.read_text())
    for key, value in control_or_prediction.items():
        block, name = key.split("__")
        data[block][name] = value
    path.write_text(json.dumps(data))


def test_images_named_outside_the_run_folder_are_never_read(runs, tmp_path):
    """A foreign evaluation.json must not copy other files into the report."""
    secret = tmp_path / "private" / "secret.png"
    secret.parent.mkdir()
    # A real PNG, so only the folder check can keep it out.
    save_png(np.full((5, 7, 3), 7, np.uint8), secret)
    secret.write_bytes(secret.read_bytes() + b"TOP-SECRET-BYTES-0123456789")
    gif = tmp_path / "private" / "secret.gif"
    save_gif(np.full((2, 4, 4, 3), 9, np.uint8), gif)
    (runs[0] / "link.png").symlink_to(secret)
    (runs[0] / "sub").mkdir()
    (runs[0] / "sub" / "link_dir").symlink_to(secret.parent, target_is_directory=True)
    _edit(
        runs[0],
        prediction__strip=str(secret),  # absolute
        control__gifs=["../private/secret.gif", "sub/link_dir/secret.gif"],
    )
    _edit(runs[1], prediction__strip="link.png")  # a link inside the folder, pointing out
    (runs[1] / "link.png").symlink_to(secret)
    _edit(runs[2], prediction__strip="../../" * 20 + str(secret).lstrip("/"))
    out = tmp_path / "report"
    html_path, md_path = build_report(runs, out)

    payloads = [secret.read_bytes(), gif.read_bytes()]
    encoded = [base64.b64encode(p) for p in payloads]
    for f in out.rglob("*"):
        if f.is_file():
            data = f.read_bytes()
            for p in payloads + encoded:
                assert p not in data, f"{f} holds the secret"
            assert b"TOP-SECRET" not in data
    copied = sorted(f.name for f in (out / "assets").iterdir() if not f.name.startswith("curve"))
    # The runs' own media are still there; only what pointed out is missing.
    assert copied == ["01_episode0.gif", "02_episode0.gif"]
    for text in (html_path.read_text(), md_path.read_text()):
        assert text.count("points outside the run folder") == 5
        assert "private/secret" in text  # the note names what was refused


def test_a_link_inside_the_run_folder_is_followed(runs, tmp_path):
    (runs[0] / "media").mkdir()
    (runs[0] / "strip.png").rename(runs[0] / "media" / "strip.png")
    (runs[0] / "strip_link.png").symlink_to(runs[0] / "media" / "strip.png")
    _edit(runs[0], prediction__strip="strip_link.png")
    out = tmp_path / "report"
    build_report(runs, out)
    assert (out / "assets" / "00_strip.png").read_bytes() == (
        runs[0] / "media" / "strip.png"
    ).read_bytes()


def test_images_that_are_missing_or_not_images_are_noted(runs, tmp_path):
    (runs[0] / "strip.png").write_text("not a picture")
    _edit(runs[1], control__gifs=["nothere.gif", "evaluation.json"])
    _, md_path = build_report(runs, tmp_path / "report")
    text = md_path.read_text()
    assert "prediction strip skipped: strip.png is not a PNG image" in text
    assert "episode GIF skipped: nothere.gif is missing" in text
    assert "episode GIF skipped: evaluation.json is not a GIF image" in text


def test_text_from_evaluation_json_cannot_add_links_to_the_markdown(runs, tmp_path):
    data = json.loads((runs[0] / "evaluation.json").read_text())
    data["label"] = "x ![leak](/etc/passwd) <img src=/etc/passwd>"
    (runs[0] / "evaluation.json").write_text(json.dumps(data))
    html_path, md_path = build_report(runs, tmp_path / "report")
    md = md_path.read_text()
    # Every bracket and angle bracket escaped: literal text, no image, link or HTML.
    assert not re.search(r"(?<!\\)\]\(/etc", md) and not re.search(r"(?<!\\)<img", md)
    assert "x !\\[leak\\](/etc/passwd) \\<img src=/etc/passwd\\>" in md
    assert "<img src=/etc" not in html_path.read_text()


def test_non_finite_metric_steps_are_shown_never_averaged_away(runs, tmp_path):
    data = json.loads((runs[1] / "evaluation.json").read_text())
    data["prediction"]["metrics"]["psnr"]["mean_of_n"] = [31.0, float("nan"), 27.0]  # bare NaN
    (runs[1] / "evaluation.json").write_text(json.dumps(data))
    fvd = {"value": "nan", "real_videos": 2, "generated_videos": 4, "frames": 5}
    _edit(runs[2], prediction__fvd=fvd)
    html_path, md_path = build_report(runs, tmp_path / "report")
    root = ET.fromstring(html_path.read_text().split("\n", 1)[1])
    header = [th.text for th in root.findall(".//table/thead/tr/th")]
    cells = [[td.text for td in tr.findall("td")] for tr in root.findall(".//table/tbody/tr")]
    rows = {row[0]: row for row in cells}
    psnr = header.index("PSNR mean-of-N")
    assert rows["blurry"][psnr] == "n/a: nan at future step 2"
    assert rows["blurry"][psnr + 1] == "30.00"  # best-of-N is finite
    assert rows["floor"][header.index("FVD")] == "n/a: nan"
    assert "| n/a: nan at future step 2 |" in md_path.read_text()
    corr = {c["metric"]: c for c in correlations(load_runs(runs)) if c["task"] == "task success"}
    assert corr["PSNR mean-of-N"]["models"] == 3  # the NaN model has no rank
    assert corr["PSNR best-of-N"]["models"] == 4
