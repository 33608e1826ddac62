"""The report's figures (matplotlib, Agg canvas; pyplot and its global state are not used).

- Figures 4 / 6: training curves per depth, plain beside residual on one error axis; train error
  thin dashed, test error bold, against iterations, the learning-rate drops as vertical lines
  (ImageNet runs -> figure4, CIFAR-10 runs -> figure6).
- Figure 7: standard deviations of layer responses, in layer order and sorted, one line per net
  (runs and sweep trials); a log axis when one net's responses dwarf another's.
- Sweeps: the error distribution function (EDF) of a study's trained trials, all of them and per
  value (or range of values: quantile bins) of one parameter, and error against FLOPs / params
  with the Pareto front (minimize both) drawn as a step line.

A figure is only made where there is data for it; `FigureSet.skipped` says what was not made and why.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator, NullFormatter

from resdsl.errors import ReportError, did_you_mean
from resdsl.pareto import pareto_front
from resdsl.report.records import (
    COMPLETED, RunSet, load_metrics, load_responses, other_net_label,
)

CURVE_FIGURES = {"imagenet": ("figure4", "Figure 4 style: training on ImageNet"),
                 "cifar10": ("figure6", "Figure 6 style: training on CIFAR-10")}


@dataclass
class FigureOut:
    key: str  # file stem
    title: str
    figure: Figure
    caption: str = ""


@dataclass
class FigureSet:
    figures: list[FigureOut] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (figure, why)


def _new(nrows: int, ncols: int, size: tuple[float, float], sharey: bool = False):
    fig = Figure(figsize=size, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=sharey)
    return fig, axes


def figure_png(fig: Figure, dpi: int = 110) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def figure_svg(fig: Figure) -> str:
    buf = io.StringIO()
    fig.savefig(buf, format="svg")
    return buf.getvalue()


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "sweep"


def net_label(r) -> str:
    """ResNet-20, ResNet-34 B, plain-56; a net of other blocks by its spec's name."""
    other = other_net_label(r)
    if other:
        return other
    depth = "?" if pd.isna(r.depth) else int(r.depth)
    if r.shortcut == "none":
        return f"plain-{depth}"
    return f"ResNet-{depth}" + ("" if r.shortcut == "A" else f" {r.shortcut}")


def _colors(n: int):
    import matplotlib

    cmap = matplotlib.colormaps["tab10" if n <= 10 else "viridis"]
    return [cmap(i if n <= 10 else i / max(n - 1, 1)) for i in range(n)]


# ---------------------------------------------------------------- Figures 4 / 6

def lr_drops(config: dict, metrics: list[dict]) -> list[int]:
    """The iterations where a run's learning rate was divided, from its record: the recipe's
    milestones (the multistep schedule), else the evaluations after which the recorded lr fell
    (the plateau schedule divides it at an evaluation; a row's lr is that of the iterations
    before it)."""
    recipe = config.get("recipe") if isinstance(config.get("recipe"), dict) else {}
    milestones = recipe.get("milestones")
    if recipe.get("schedule", "multistep") == "multistep" and isinstance(milestones, list):
        return sorted({int(m) for m in milestones
                       if isinstance(m, (int, float)) and not isinstance(m, bool)})
    rows = [x for x in metrics if isinstance(x.get("lr"), (int, float)) and x.get("iter") is not None]
    return [int(a["iter"]) for a, b in zip(rows, rows[1:]) if b["lr"] < a["lr"]]


def curve_figures(rs: RunSet) -> FigureSet:
    out = FigureSet()
    runs = rs.runs[(rs.runs["kind"] == "run")]
    datasets = sorted({d for d in runs["dataset"].dropna()})
    if not datasets:
        out.skipped.append(("figure4/figure6", "no training runs (kind run) with a dataset"))
    for ds in datasets:
        key, title = CURVE_FIGURES.get(ds, (f"curves_{slug(ds)}", f"Training curves: {ds}"))
        df = runs[(runs["dataset"] == ds) & runs["shortcut"].notna()]
        unknown = runs[(runs["dataset"] == ds) & runs["shortcut"].isna()]
        if len(unknown):
            out.skipped.append((f"{key}: {', '.join(unknown['run_dir'])}",
                                "no shortcut option recorded (plain or residual unknown)"))
        curves = []
        for r in df.itertuples(index=False):
            try:
                m = load_metrics(rs.path(r.run_dir))
            except (OSError, ValueError) as e:
                out.skipped.append((f"{key}: {r.run_dir}", f"metrics.jsonl unreadable ({e})"))
                continue
            m = [x for x in m if isinstance(x, dict) and x.get("iter") is not None]
            if m:
                curves.append((r, m))
        if not curves:
            out.skipped.append((key, f"no {ds} run has metrics.jsonl with evaluations"))
            continue
        depths = sorted({-1 if pd.isna(r.depth) else int(r.depth) for r, _ in curves})
        colour = dict(zip(depths, _colors(len(depths))))
        # one error axis for both panels, as in the paper: plain and residual compare by eye
        fig, axes = _new(1, 2, (11, 4.2), sharey=True)
        panels = {"plain": axes[0][0], "residual": axes[0][1]}
        drops: dict[str, set[int]] = {name: set() for name in panels}
        labelled = set()
        any_reduced = False
        for r, m in sorted(curves, key=lambda c: (c[0].depth if not pd.isna(c[0].depth) else -1,
                                                   str(c[0].shortcut), c[0].seed if not pd.isna(c[0].seed) else -1)):
            panel = "plain" if r.shortcut == "none" else "residual"
            ax = panels[panel]
            drops[panel].update(lr_drops(rs.configs.get(r.run_dir, {}), m))
            c = colour[-1 if pd.isna(r.depth) else int(r.depth)]
            label = net_label(r) + ("*" if r.reduced else "")
            any_reduced |= bool(r.reduced)
            first = label not in labelled
            labelled.add(label)
            it = np.array([x["iter"] for x in m], dtype=float)
            tr = np.array([np.nan if x.get("train_err") is None else 100 * x["train_err"] for x in m])
            te = np.array([np.nan if x.get("test_err") is None else 100 * x["test_err"] for x in m])
            alpha = 1.0 if first else 0.45
            ax.plot(it, tr, ls="--", lw=0.9, color=c, alpha=alpha)
            ax.plot(it, te, ls="-", lw=2.2, color=c, alpha=alpha, label=label if first else None)
        for name, ax in panels.items():
            ax.set_title("plain" if name == "plain" else "residual")
            ax.set_xlabel("iter.")
            ax.grid(alpha=0.3)
            for it in sorted(drops[name]):
                ax.axvline(it, color="grey", ls=":", lw=1.0)
            if ax.lines:
                handles, labels = ax.get_legend_handles_labels()
                handles += [Line2D([], [], color="grey", ls="--", lw=0.9),
                            Line2D([], [], color="grey", ls="-", lw=2.2)]
                labels += ["train error", "test error"]
                if drops[name]:
                    handles.append(Line2D([], [], color="grey", ls=":", lw=1.0))
                    labels.append("lr divided")
                ax.legend(handles, labels, fontsize=8)
            else:
                ax.text(0.5, 0.5, f"no {name} runs", ha="center", va="center", transform=ax.transAxes,
                        color="grey")
        panels["plain"].set_ylabel("error (%)")   # the residual panel shares this axis
        fig.suptitle(title)
        caption = ("Dashed thin lines: training error; bold lines: test error."
                   + (" Dotted vertical lines: where the learning rate was divided (the recipe's "
                      "milestones, or where the plateau schedule divided it)."
                      if any(drops.values()) else "")
                   + (" * reduced budget (not a full reproduction)." if any_reduced else ""))
        out.figures.append(FigureOut(key, title, fig, caption))
    return out


# ---------------------------------------------------------------- Figure 7

# Figure 7 draws its std axis on a log scale when the largest response is this many times the
# smallest: one net ten times the others would flatten them into the floor of a linear axis.
LOG_SCALE_RATIO = 10.0
# Up to this many nets, each panel has its legend; more (a sweep's trials) share one beside them.
FIGURE7_LEGEND_IN_AXES = 6
FIGURE7_LABEL_IN_AXES = 32       # characters of the longest label that fit two columns of one


def response_figures(rs: RunSet) -> FigureSet:
    out = FigureSet()
    runs = rs.runs[rs.runs["kind"].isin(["run", "trial"])]   # a sweep's trials are runs too
    nets: dict[str, dict[str, tuple]] = {}
    for r in runs.itertuples(index=False):
        layers = load_responses(rs.path(r.run_dir))
        if not layers:
            continue
        stds = [float(x["std"]) for x in layers if x.get("std") is not None]
        if not stds:
            continue
        ds = r.dataset or "unknown"
        # a trial is told from its study's other trials by the parameters it swept
        swept = {k: v for k, v in rs.sweep_params.get(r.run_dir, {}).items() if k != "seed"}
        label = (net_label(r) + ("".join(f" {k}={_number(v)}" for k, v in swept.items()))
                 + ("*" if r.reduced else ""))
        # one line per net: the first run (lowest seed) of each configuration
        nets.setdefault(ds, {}).setdefault(label, (r, stds))
    if not nets:
        out.skipped.append(("figure7", "no run has responses.json"))
        return out
    for ds, by_label in sorted(nets.items()):
        key = "figure7" if ds == "cifar10" or len(nets) == 1 else f"figure7_{slug(ds)}"
        items = sorted(by_label.items(), key=lambda kv: (kv[1][0].shortcut != "none",
                                                         -1 if pd.isna(kv[1][0].depth) else int(kv[1][0].depth)))
        # many nets, or long labels (a sweep's trials with their parameters): one legend beside
        # both panels, not one over each that would cover it
        beside = (len(items) > FIGURE7_LEGEND_IN_AXES
                  or max(len(label) for label in by_label) > FIGURE7_LABEL_IN_AXES)
        fig, axes = _new(2, 1, (12, 6.5) if beside else (8, 6.5))
        top, bottom = axes[0][0], axes[1][0]
        for (label, (r, stds)), c in zip(items, _colors(len(items))):
            ls = "--" if r.shortcut == "none" else "-"
            x = np.arange(1, len(stds) + 1)
            top.plot(x, stds, ls=ls, color=c, lw=1.4, label=label)
            bottom.plot(x, sorted(stds, reverse=True), ls=ls, color=c, lw=1.4, label=label)
        top.set_xlabel("layer index (original)")
        bottom.set_xlabel("layer index (sorted by magnitude)")
        values = [v for _, (_, stds) in items for v in stds]
        log = min(values) > 0 and max(values) / min(values) >= LOG_SCALE_RATIO
        for ax in (top, bottom):
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # layers are counted, not measured
            ax.set_ylabel("std (log scale)" if log else "std")
            if log:
                ax.set_yscale("log")
            ax.grid(alpha=0.3)
            if not beside:
                ax.legend(fontsize=8, ncol=2)
        if beside:
            fig.legend(*top.get_legend_handles_labels(), loc="outside right upper", fontsize=7,
                       ncol=1 if len(items) <= 30 else 2)
        title = f"Figure 7 style: std of layer responses ({ds})"
        fig.suptitle(title)
        caption = ("Responses are the outputs of each 3x3 layer after BN, before the nonlinearity. "
                   "Top: layer order; bottom: sorted descending. Plain nets dashed."
                   + (f" Log scale: the largest std is {max(values) / min(values):.0f} times the "
                      "smallest." if log else ""))
        out.figures.append(FigureOut(key, title, fig, caption))
    return out


# ---------------------------------------------------------------- sweeps

def edf(errors) -> tuple[np.ndarray, np.ndarray]:
    """Error distribution function: F(e) = fraction of models with error < e (as step points)."""
    e = np.sort(np.asarray(errors, dtype=float))
    return e, np.arange(1, len(e) + 1) / len(e)


# The EDF split by one parameter: by its values where they are few and repeat (a grid, a
# choice), else by up to EDF_BINS quantile bins of at least EDF_MIN_PER_BIN trials each (a
# parameter with more than EDF_MAX_VALUES values, or a continuous one: fractional values, no two
# trials alike); with fewer trials than two bins need, not split.
EDF_MAX_VALUES = 6
EDF_BINS = 4
EDF_MIN_PER_BIN = 2


def _number(v) -> str:
    """A parameter's value in a legend: four significant digits (36.44, not 36.44201553446822)."""
    if isinstance(v, (float, np.floating)) and not float(v).is_integer():
        return f"{float(v):.4g}"
    if isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)):
        return str(int(v))
    return str(v)


def _param_groups(values: pd.Series) -> tuple[pd.Series, list[str]] | None:
    """Each trial's group label and the labels in order (by value), or None when the trials
    are too few to split a continuous or many-valued parameter (see EDF_MAX_VALUES)."""
    numeric = pd.to_numeric(values, errors="coerce")
    is_number = numeric.notna().all() and not any(isinstance(v, (bool, np.bool_)) for v in values)
    if not is_number:
        labels = values.astype(str)
        return labels, sorted(labels.unique(), key=_sort_key)
    continuous = (bool((numeric != numeric.round()).any()) and numeric.nunique() == len(numeric)
                  and len(numeric) >= 3)
    if not continuous and numeric.nunique() <= EDF_MAX_VALUES:
        labels = pd.Series([_number(v) for v in values], index=values.index)
        order = sorted(dict.fromkeys(zip(numeric, labels)))
        return labels, list(dict.fromkeys(label for _, label in order))
    q = min(EDF_BINS, len(numeric) // EDF_MIN_PER_BIN)
    if q < 2:
        return None
    bins = pd.qcut(numeric, q=q, labels=False, duplicates="drop")
    labels = pd.Series("", index=values.index)
    order = []
    for b in sorted(bins.unique()):
        members = numeric[bins == b]
        lo, hi = members.min(), members.max()
        label = _number(lo) if lo == hi else f"[{_number(lo)}, {_number(hi)}]"
        labels[bins == b] = label
        order.append(label)
    return labels, order


def check_edf_param(rs: RunSet, edf_param: str | None) -> None:
    """ReportError when --edf-param names no parameter of any sweep trial (there being trials)."""
    trials = rs.runs[rs.runs["kind"] == "trial"]
    if not edf_param or trials.empty:
        return
    all_params = sorted({k for d in trials["run_dir"] for k in rs.sweep_params.get(d, {})})
    if edf_param not in all_params:
        hint = did_you_mean(edf_param, all_params)
        raise ReportError(f"--edf-param {edf_param!r}: no sweep trial has that parameter"
                          + (f"; did you mean {hint!r}?" if hint else
                             f"; swept parameters: {', '.join(all_params) or '(none)'}"))


def sweep_figures(rs: RunSet, edf_param: str | None = None) -> FigureSet:
    out = FigureSet()
    trials = rs.runs[rs.runs["kind"] == "trial"]
    if trials.empty:
        out.skipped.append(("sweep figures", "no sweep trials (runs with a 'sweep' entry in config.json)"))
        return out
    studies = trials["study"].fillna("sweep")
    check_edf_param(rs, edf_param)
    for study in sorted(set(studies)):
        df = trials[(studies == study) & (trials["status"] == COMPLETED) & trials["test_err"].notna()]
        key = f"sweep_{slug(study)}"
        if len(df) < 2:
            out.skipped.append((key, f"study {study!r} has {len(df)} completed trial(s) with a test error; "
                                     "needs at least 2"))
            continue
        err = 100 * df["test_err"].astype(float)
        reduced = bool(df["reduced"].any())
        mark = " (reduced budget)" if reduced else ""
        # EDF per value of one parameter
        params = [rs.sweep_params.get(d, {}) for d in df["run_dir"]]
        name = edf_param or next((k for p in params for k in p), None)
        if name is None:
            out.skipped.append((f"{key}_edf", f"study {study!r}: trials record no swept parameters"))
        elif not any(name in p for p in params):
            out.skipped.append((f"{key}_edf", f"study {study!r} does not sweep {name!r}"))
        else:
            vals = pd.Series([p.get(name) for p in params], index=df.index, dtype=object)
            split = _param_groups(vals.where(vals.notna(), "(unset)"))
            fig, axes = _new(1, 1, (6.5, 4.5))
            ax = axes[0][0]
            lo, hi = float(err.min()), float(err.max())
            pad = 0.02 * (hi - lo or 1.0)

            def draw(values, **kw):
                e, f = edf(values)  # F = 0 left of the best model, 1 right of the worst
                ax.step(np.r_[lo - pad, e, hi + pad], np.r_[0, f, 1], where="post", **kw)
                return len(e)

            # the legend's title names the parameter, its entries a value and a count of runs:
            # "n=3 (n=4)" would read as two values of one parameter when the swept one is n
            n = draw(err, color="black", lw=2.2)
            ax.lines[-1].set_label(f"all: {_runs(n)}")
            if split is not None:
                groups, order = split
                for g, c in zip(order, _colors(len(order))):
                    n = draw(err[groups == g], color=c, lw=1.4)
                    ax.lines[-1].set_label(f"{g}: {_runs(n)}")
            ax.set_xlim(lo - pad, hi + pad)
            ax.set_xlabel("test error (%)")
            ax.set_ylabel("cumulative prob.  F(e) = fraction with error < e")
            ax.set_ylim(0, 1.02)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8, title=name if split is not None else None, title_fontsize=8)
            title = (f"Error distribution function: study {study}"
                     + (f", by {name}" if split is not None else "") + mark)
            ax.set_title(title, fontsize=10)
            caption = "EDF as in Radosavovic et al., 'Designing Network Design Spaces'."
            if split is None:
                caption += (f" Not split by {name}: {len(df)} trials are too few for "
                            f"{EDF_MIN_PER_BIN} or more in each of two bins of its values.")
            out.figures.append(FigureOut(f"{key}_edf", title, fig, caption))
        # error vs FLOPs / params with the Pareto front
        cols = [(c, lab) for c, lab in (("flops", "FLOPs"), ("params", "params"))
                if df[c].notna().sum() >= 1]
        if not cols:
            out.skipped.append((f"{key}_pareto", f"study {study!r}: trials record no FLOPs or params"))
            continue
        fig, axes = _new(1, len(cols), (5.5 * len(cols), 4.3))
        for ax, (c, lab) in zip(axes[0], cols):
            ok = df[c].notna()
            x = df.loc[ok, c].astype(float).to_numpy()
            y = err[ok].to_numpy()
            ax.scatter(x, y, s=18, alpha=0.7, label="trials")
            fr = np.array(pareto_front(np.column_stack([x, y])), dtype=int)
            if len(fr):
                ax.step(x[fr], y[fr], where="post", color="crimson", lw=1.6, label="Pareto front")
                ax.scatter(x[fr], y[fr], s=40, facecolors="none", edgecolors="crimson")
            if x.min() > 0 and x.max() / x.min() > 10:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel(lab)
            ax.set_ylabel("test error (%)")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
        title = f"Error vs complexity: study {study}{mark}"
        fig.suptitle(title)
        out.figures.append(FigureOut(f"{key}_pareto", title, fig,
                                     "Pareto front: no other trial has both lower cost and lower error."))
    return out


def _runs(n: int) -> str:
    return f"{n} run" + ("" if n == 1 else "s")


def _sort_key(v: str):
    try:
        return (0, float(v), v)
    except ValueError:
        return (1, 0.0, v)


def make_figures(rs: RunSet, edf_param: str | None = None) -> FigureSet:
    out = FigureSet()
    for part in (curve_figures(rs), response_figures(rs), sweep_figures(rs, edf_param)):
        out.figures += part.figures
        out.skipped += part.skipped
    return out
