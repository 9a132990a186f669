"""``foresight report``: one HTML page (and a Markdown twin) comparing evaluated models.

Input: run folders written by ``foresight evaluate`` (each holds ``evaluation.json``).
Output: a table of every model x {task success ± 95% CI, final distance, PSNR, SSIM, LPIPS,
FVD, seconds per planning step, planner budget}, per-step metric curves, image strips,
planned-episode GIFs, and
the rank correlation (Spearman) of each offline metric with task success across models:
the question of seed 000 — do pixel metrics tell which model lets the robot do the task? —
answered with this run's own numbers. The HTML embeds every image, so the page is one file.

A report reads only files inside the run folders it is given: an image that an
``evaluation.json`` names outside its folder (an absolute path, ``..``, a link pointing out)
is skipped with a note, so a foreign run folder cannot copy other files into the report.
A metric that is not finite at some step is shown as such, never averaged away.
"""

from __future__ import annotations

import base64
import html
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402
from scipy.stats import spearmanr  # noqa: E402

from foresight.errors import ForesightError  # noqa: E402
from foresight.io import atomic_path, atomic_write_text  # noqa: E402
from foresight.results import (  # noqa: E402
    Control,
    Evaluation,
    curve_mean,
    non_finite_name,
    non_finite_steps,
)

#: Offline metrics: (key, label, higher is better).
METRICS = (
    ("psnr", "PSNR", True),
    ("ssim", "SSIM", True),
    ("sharpness", "sharpness diff.", True),
    ("lpips", "LPIPS", False),
)
AGGREGATES = (("mean_of_n", "mean-of-N"), ("best_of_n", "best-of-N"))
#: The open-loop ranking measures (``evaluation.json``'s ``ranking``): (key, label, higher
#: is better). They need the simulator, not episodes: see :mod:`foresight.planners.ranking`.
RANKING = (
    ("rho", "ranking ρ", True),
    ("regret", "ranking regret", False),
)


@dataclass(frozen=True)
class Run:
    """One evaluated model, as read from ``evaluation.json``."""

    folder: Path
    result: Evaluation

    @property
    def label(self) -> str:
        """Display name."""
        return self.result.label or self.folder.name

    def metric_curve(self, metric: str, aggregate: str) -> list[float] | None:
        """Per-future-step values, or None when unavailable."""
        curves = self.result.prediction.metrics.get(metric)
        curve = getattr(curves, aggregate) if curves is not None else None
        return list(curve) if curve else None

    def metric_mean(self, metric: str, aggregate: str) -> float | None:
        """The metric averaged over future steps; NaN or infinite if any step is."""
        curve = self.metric_curve(metric, aggregate)
        return curve_mean(curve) if curve else None

    def metric_cell(self, metric: str, aggregate: str, digits: int) -> str:
        """The table cell: the mean over steps, or where the curve is not finite."""
        curve = self.metric_curve(metric, aggregate)
        where = non_finite_steps(curve) if curve else None
        if where is not None:
            return f"n/a: {where}"
        return _fmt(self.metric_mean(metric, aggregate), digits, self.unavailable(metric))

    @property
    def fvd(self) -> float | None:
        """FVD of the sampled videos, or None when not measured."""
        fvd = self.result.prediction.fvd
        return fvd.value if fvd is not None else None

    def unavailable(self, metric: str) -> str:
        """Why a prediction metric is missing."""
        pred = self.result.prediction
        return pred.unavailable.get(metric) or pred.reason or "not measured"

    def ranking_value(self, key: str) -> float | None:
        """A value of the open-loop ranking block, or None when it was not measured."""
        ranking = self.result.ranking
        return None if ranking is None else getattr(ranking, key)

    def ranking_cell(self, key: str) -> str:
        """The table cell of a ranking value, or why it is missing."""
        ranking = self.result.ranking
        why = "not measured" if ranking is None else ranking.unavailable or "not measured"
        return _fmt(self.ranking_value(key), 2, why)

    @property
    def control(self) -> Control:
        """The task-success block (may hold only ``unavailable``)."""
        return self.result.control

    def budget(self) -> str:
        """The planner budget cell: the budget used, or why there is none."""
        c = self.control
        if c.budget is not None:
            return c.budget.label()
        if c.unavailable is not None:
            return f"n/a: {short_reason(c.unavailable)}"
        if c.planner == "none":
            return "n/a: does not plan"
        return "n/a: not recorded (evaluated by an older foresight)"


def load_runs(folders: list[Path]) -> list[Run]:
    """Read ``evaluation.json`` from each folder; any problem is a one-line error."""
    runs = []
    for folder in folders:
        path = folder / "evaluation.json" if folder.is_dir() else folder
        runs.append(Run(path.parent, Evaluation.load(path)))
    if not runs:
        raise ForesightError("no evaluation runs given")
    return runs


#: Reasons longer than this are cut to their first clause in table cells; the full text goes
#: to the notes under the table.
SHORT_REASON = 60


def short_reason(reason: str) -> str:
    """The part of ``reason`` a table cell shows (its first clause when it is long)."""
    if len(reason) <= SHORT_REASON:
        return reason
    head = reason.split(":")[0].split(";")[0].split(" (")[0]
    return head[:SHORT_REASON].rstrip() + " (see notes)"


def _fmt(value: float | None, digits: int, reason: str) -> str:
    """A number, ``n/a: reason`` when there is none, or what it is when it is not finite."""
    if value is None:
        return f"n/a: {short_reason(reason)}"
    if not math.isfinite(value):
        return f"n/a: {non_finite_name(value)}"
    return f"{value:.{digits}f}"


def _finite(value: float | None) -> float | None:
    """``value`` when it is a finite number, else None (not rankable)."""
    return value if value is not None and math.isfinite(value) else None


def long_reasons(runs: list[Run]) -> list[str]:
    """Every distinct reason too long for a table cell, in full."""
    reasons: list[str] = []
    for run in runs:
        pred = run.result.prediction
        candidates = [*pred.unavailable.values(), pred.reason, run.control.unavailable]
        for r in candidates:
            if r and len(str(r)) > SHORT_REASON and str(r) not in reasons:
                reasons.append(str(r))
    return reasons


def budget_note(runs: list[Run]) -> str | None:
    """A note when the models that plan did so with different planner budgets (else None).

    A smaller budget (fewer candidates or iterations) can lower task success on its own, so
    the table's success rates are then not a comparison of models alone.
    """
    used = {r.label: r.control.budget for r in runs if r.control.budget is not None}
    kinds = {(b.samples, b.iterations, b.num_samples) for b in used.values()}
    if len(kinds) < 2:
        return None
    each = "; ".join(f"{label}: {b.label()}" for label, b in used.items())
    return (
        "Models planned with different planner budgets (samples x iterations, from the planner "
        f"preset or the model's plan block): {each}. Fewer candidates can lower task success "
        "by themselves; compare success rates with that in mind."
    )


def table_rows(runs: list[Run]) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the main table: every cell a number or ``n/a: reason``."""
    header = ["model", "success rate", "95% CI", "final distance (cm)"]
    for _, label, _ in METRICS:
        header += [f"{label} {agg}" for _, agg in AGGREGATES]
    header += ["FVD", *(label for _, label, _ in RANKING), "s / planning step", "planner budget"]
    rows = []
    for run in runs:
        c = run.control
        why = c.unavailable or "not measured"
        rate = c.success_rate
        ci = c.ci95
        dist = c.mean_final_distance
        row = [
            run.label,
            _fmt(rate, 2, why),
            f"{ci[0]:.2f} to {ci[1]:.2f}"
            if ci and all(map(math.isfinite, ci))
            else _fmt(None if ci is None else math.nan, 2, why),
            _fmt(dist * 100 if dist is not None else None, 1, why),
        ]
        for key, _, _ in METRICS:
            digits = 2 if key in ("psnr", "sharpness") else 3
            for agg, _ in AGGREGATES:
                row.append(run.metric_cell(key, agg, digits))
        row.append(_fmt(run.fvd, 1, run.unavailable("fvd")))
        row.extend(run.ranking_cell(key) for key, _, _ in RANKING)
        row.append(_fmt(c.seconds_per_step, 3, why))
        row.append(run.budget())
        rows.append(row)
    return header, rows


def offline_measures(runs: list[Run]) -> list[tuple[str, str, list[float | None], bool]]:
    """Every offline measure as (name, metric label, value per run, higher is better)."""
    measures = []
    for key, label, higher in METRICS:
        for agg, agg_label in AGGREGATES:
            # A model whose curve is not finite somewhere has no rank on that measure.
            values = [_finite(run.metric_mean(key, agg)) for run in runs]
            measures.append((f"{label} {agg_label}", label, values, higher))
    measures.append(("FVD", "FVD", [_finite(run.fvd) for run in runs], False))
    for key, label, higher in RANKING:
        measures.append((label, label, [_finite(run.ranking_value(key)) for run in runs], higher))
    return measures


#: Task measures offline metrics are ranked against: (field of ``control``, name, higher is
#: better). Final distance still separates models when every learned one fails the task.
TASK_MEASURES = (
    ("success_rate", "task success", True),
    ("mean_final_distance", "final distance to the goal", False),
)


def correlations(runs: list[Run]) -> list[dict[str, Any]]:
    """Spearman rank correlation of each offline measure with each task measure across models.

    One entry per (offline measure, task measure); identical "n/a" sentences are given once.
    """
    out: list[dict[str, Any]] = []
    measures = offline_measures(runs)
    for task_key, task, task_higher in TASK_MEASURES:
        outcome = [_finite(getattr(run.control, task_key)) for run in runs]
        for name, label, values, higher in measures:
            pairs = [(m, r) for m, r in zip(values, outcome, strict=True) if None not in (m, r)]
            entry: dict[str, Any] = {
                "metric": name,
                "task": task,
                "models": len(pairs),
                "rho": None,
            }
            if len(pairs) < 3:
                entry["sentence"] = (
                    f"n/a: {len(pairs)} model(s) have both {label} and a {task}; "
                    "a rank correlation needs at least 3"
                )
            elif len({m for m, _ in pairs}) < 2 or len({r for _, r in pairs}) < 2:
                entry["sentence"] = f"n/a: {label} or the {task} is the same for every model"
            else:
                rho, p = spearmanr([m for m, _ in pairs], [r for _, r in pairs])
                entry.update(rho=float(rho), p=float(p))
                agree = rho * (1 if higher else -1) * (1 if task_higher else -1)
                entry["sentence"] = _interpret(name, task, float(rho), float(agree), len(pairs))
            if all(e["sentence"] != entry["sentence"] for e in out):
                out.append(entry)
    return out


def _interpret(name: str, task: str, rho: float, agree: float, n: int) -> str:
    """A sentence on one correlation (``agree > 0``: better metric, better task outcome)."""
    if abs(rho) < 0.4:
        verdict = (
            f"barely tracks {task}: ranking models by it would not tell which one "
            "lets the robot do the task"
        )
    elif agree > 0:
        verdict = f"ranks models roughly as {task} does"
    else:
        verdict = (
            f"ranks models against {task}: the models it prefers are those the robot "
            "does worse with"
        )
    caveat = "; with so few models, treat it as a hint" if n < 6 else ""
    return f"{name} {verdict} (Spearman rho = {rho:+.2f} over {n} models{caveat})."


def plot_curves(runs: list[Run], key: str, label: str, path: Path) -> bool:
    """Per-step curves of one metric, every model; False if no model has it."""
    fig, ax = plt.subplots(figsize=(6, 3.6), dpi=100)
    drawn = False
    for i, run in enumerate(runs):
        colour = f"C{i % 10}"
        for agg, agg_label in AGGREGATES:
            curve = run.metric_curve(key, agg)
            if curve:
                # A gap where a step is not finite (the table says which steps).
                curve = [v if math.isfinite(v) else math.nan for v in curve]
                style = "-" if agg == "mean_of_n" else "--"
                ax.plot(
                    range(1, len(curve) + 1),
                    curve,
                    style,
                    color=colour,
                    label=f"{run.label} ({agg_label})",
                )
                drawn = True
    if drawn:
        ax.set_xlabel("future step")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        with atomic_path(path, suffix=".png") as tmp:
            fig.savefig(tmp, format="png")
    plt.close(fig)
    return drawn


def _data_uri(path: Path) -> str:
    mime = "image/gif" if path.suffix == ".gif" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


#: What each image an ``evaluation.json`` names must start with.
_SIGNATURES = {"png": (b"\x89PNG\r\n\x1a\n",), "gif": (b"GIF87a", b"GIF89a")}


def _clip(text: str, most: int = 80) -> str:
    return text if len(text) <= most else text[: most - 3] + "..."


def read_run_image(folder: Path, name: str, kind: str) -> bytes | str:
    """The bytes of image ``name`` of run ``folder``, or why it is skipped.

    ``name`` comes from a file that may be foreign, so it is read only if, links followed,
    it is a file inside ``folder`` and holds an image of ``kind`` (``png`` or ``gif``).
    """
    root = folder.resolve()
    try:
        path = (folder / name).resolve(strict=True)
    except (OSError, RuntimeError, ValueError):  # missing, a link loop, a NUL in the name
        return f"{_clip(name)} is missing"
    if not path.is_relative_to(root):
        return f"{_clip(name)} points outside the run folder (a report reads only files inside it)"
    if not path.is_file():
        return f"{_clip(name)} is not a file"
    try:
        data = path.read_bytes()
    except OSError as err:
        return f"{_clip(name)} cannot be read ({err.strerror or err})"
    if not data.startswith(_SIGNATURES[kind]):
        return f"{_clip(name)} is not a {kind.upper()} image"
    return data


def _copy_media(run: Run, index: int, assets: Path, gifs: int) -> tuple[list[Path], list[str]]:
    """Copy run ``index``'s strip and first ``gifs`` episode GIFs to ``assets``.

    Returns:
        The copies, and a note for each image skipped.
    """
    wanted = []
    if run.result.prediction.strip:
        wanted.append(("prediction strip", run.result.prediction.strip, "png", "strip.png"))
    for j, gif in enumerate(run.control.gifs[:gifs]):
        wanted.append(("episode GIF", gif, "gif", f"episode{j}.gif"))
    files: list[Path] = []
    skipped: list[str] = []
    for what, name, kind, dst_name in wanted:
        data = read_run_image(run.folder, name, kind)
        if isinstance(data, str):
            skipped.append(f"{what} skipped: {data}")
            continue
        dst = assets / f"{index:02d}_{dst_name}"
        with atomic_path(dst, suffix=dst.suffix) as tmp:
            tmp.write_bytes(data)
        files.append(dst)
    return files, skipped


def build_report(folders: list[Path], out: Path, gifs_per_model: int = 2) -> tuple[Path, Path]:
    """Write ``out/report.html`` and ``out/report.md`` (+ ``out/assets/``).

    Returns:
        The HTML and Markdown paths.
    """
    runs = load_runs(folders)
    assets = out / "assets"
    assets.mkdir(parents=True, exist_ok=True)
    header, rows = table_rows(runs)
    corr = correlations(runs)

    figures: list[tuple[str, Path]] = []
    for key, label, _ in METRICS:
        path = assets / f"curve_{key}.png"
        if plot_curves(runs, key, label, path):
            figures.append((f"{label} per future step (solid: mean-of-N, dashed: best-of-N)", path))

    media: list[tuple[str, list[Path], list[str]]] = []
    for i, run in enumerate(runs):
        files, skipped = _copy_media(run, i, assets, gifs_per_model)
        media.append((run.label, files, skipped))

    protocols = [
        f"{r.label}: {r.result.prediction.protocol}" for r in runs if r.result.prediction.protocol
    ]
    notes = long_reasons(runs)
    budgets = budget_note(runs)
    if budgets:
        notes.append(budgets)
    suites = sorted({r.control.suite for r in runs if r.control.suite})

    html_path = out / "report.html"
    md_path = out / "report.md"
    page = (header, rows, corr, figures, media, protocols, suites, notes)
    atomic_write_text(html_path, _html(*page))
    atomic_write_text(md_path, _markdown(*page, out))
    return html_path, md_path


_INTRO = (
    "Each model is judged first by task success: the share of pushing tasks in which the "
    "visual-foresight planner, imagining futures with that model, brings the target object "
    "within the success threshold of its goal. Pixel (PSNR, SSIM) and perceptual (LPIPS) "
    "metrics of its predictions stand beside it. The oracle plans with the simulator itself "
    "(the upper bound); random and copy_last are the floor."
)


def _html(header, rows, corr, figures, media, protocols, suites, notes) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8" /><title>foresight report</title>',
        "<style>body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:4px 6px}"
        "th{background:#f3f3f3}img{image-rendering:pixelated;margin:4px}</style></head><body>",
        "<h1>foresight: models judged by the task</h1>",
        f"<p>{e(_INTRO)}</p>",
    ]
    if suites:
        parts.append(f"<p>Task suite: {e(', '.join(suites))}.</p>")
    if protocols:
        parts.append("<p>Prediction protocol per model:</p><ul>")
        parts += [f"<li>{e(p)}</li>" for p in protocols]
        parts.append("</ul>")
    parts.append("<h2>Results</h2><table><thead><tr>")
    parts += [f"<th>{e(h)}</th>" for h in header]
    parts.append("</tr></thead><tbody>")
    for row in rows:
        parts.append("<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>")
    parts.append("</tbody></table>")
    if notes:
        parts.append("<p>Notes:</p><ul>")
        parts += [f"<li>{e(n)}</li>" for n in notes]
        parts.append("</ul>")
    parts.append("<h2>Do offline metrics predict task success?</h2><ul>")
    parts += [f"<li>{e(c['sentence'])}</li>" for c in corr]
    parts.append("</ul>")
    if figures:
        parts.append("<h2>Metrics per future step</h2>")
        for caption, path in figures:
            parts.append(
                f'<figure><img src="{_data_uri(path)}" alt="{e(caption)}" />'
                f"<figcaption>{e(caption)}</figcaption></figure>"
            )
    parts.append("<h2>Predictions and planned episodes</h2>")
    for label, files, skipped in media:
        parts.append(f"<h3>{e(label)}</h3>")
        if not files and not skipped:
            parts.append("<p>n/a: no strips or episode GIFs in this run</p>")
        parts += [f"<p>n/a: {e(note)}</p>" for note in skipped]
        for f in files:
            parts.append(f'<img src="{_data_uri(f)}" alt="{e(label)} {e(f.stem)}" />')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _md(text: str) -> str:
    """``text`` from an ``evaluation.json`` as literal Markdown: no links, images or HTML."""
    text = " ".join(str(text).split())
    for ch in "\\[]<>":
        text = text.replace(ch, "\\" + ch)
    return text


def _markdown(header, rows, corr, figures, media, protocols, suites, notes, out: Path) -> str:
    def cell(c: str) -> str:
        return _md(c).replace("|", "\\|")

    lines = ["# foresight: models judged by the task", "", _INTRO, ""]
    if suites:
        lines += [f"Task suite: {_md(', '.join(suites))}.", ""]
    if protocols:
        lines += ["Prediction protocol per model:", ""]
        lines += [f"- {_md(p)}" for p in protocols]
    lines += ["", "## Results", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in rows]
    if notes:
        lines += ["", "Notes:", ""] + [f"- {_md(n)}" for n in notes]
    lines += ["", "## Do offline metrics predict task success?", ""]
    lines += [f"- {_md(c['sentence'])}" for c in corr]
    if figures:
        lines += ["", "## Metrics per future step", ""]
        lines += [f"![{caption}]({p.relative_to(out).as_posix()})" for caption, p in figures]
    lines += ["", "## Predictions and planned episodes", ""]
    for label, files, skipped in media:
        lines += [f"### {_md(label)}", ""]
        if not files and not skipped:
            lines.append("n/a: no strips or episode GIFs in this run")
        if skipped:  # a list, then a blank line so the images do not join its last item
            lines += [f"- n/a: {_md(note)}" for note in skipped] + [""]
        lines += [f"![{_md(label)}]({f.relative_to(out).as_posix()})" for f in files]
        lines.append("")
    return "\n".join(lines) + "\n"
