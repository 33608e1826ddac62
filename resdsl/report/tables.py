"""The report's tables, built from the runs frame. Pure functions: no I/O, no printing.

Every table is a `Table`: a frame of display strings in the paper's layout (ours, the paper's
number and the difference side by side), its caption, and footnotes. Errors in the runs frame are
fractions; tables show percent with two decimals; differences are ours - paper in percentage
points. A cell built from reduced-budget runs carries a `*` and a footnote saying why.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass, field

import pandas as pd

from resdsl.report.paper import (CAPTIONS, TABLE2, TABLE3, TABLE4, TABLE5, TABLE6,
                                 TABLE6_PLAIN_DEPTHS, Match, PaperRow)
from resdsl.report.records import COMPLETED, other_net_label
from resdsl.text import format_count

REDUCED_MARK = "*"
# The runs table's error columns: percent, as every table shows errors.
ERROR_COLUMNS = ("top-1 err %", "top-5 err %", "val err %")
NOTE_DIFF = "Δ = ours − paper, in percentage points; for \"best (mean±std)\" cells Δ compares the best."
NOTE_STD = ("best (mean±std): best, mean and sample standard deviation (ddof=1) of the final "
            "test errors of the runs of one configuration (e.g. seeds).")
NOTE_FINAL = ("Ours: final test error at the end of training (never the best over the run); "
              "only completed runs of `resdsl train` (kind run) are used, not sweep trials.")


@dataclass
class Table:
    key: str  # "runs", "table2", ... (file name stem)
    title: str
    frame: pd.DataFrame  # display strings
    notes: list[str] = field(default_factory=list)
    matched: int = 0  # how many of our runs the table uses


@dataclass
class Cell:
    """Our number for one table cell, from the runs of one row."""

    values: list[float]  # percent
    reduced: bool = False
    why: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def best(self) -> float | None:
        return round(min(self.values), 2) if self.values else None

    def text(self) -> str:
        if not self.values:
            return ""
        s = fmt_best_mean_std(self.values)
        return s + (REDUCED_MARK if self.reduced else "")

    def diff(self, paper: float | None) -> str:
        if self.best is None or paper is None:
            return ""
        return f"{self.best - paper:+.2f}" + (REDUCED_MARK if self.reduced else "")


# ---------------------------------------------------------------- formatting helpers

def pct(err: float) -> float:
    """A fraction in [0, 1] as percent."""
    return 100.0 * float(err)


def fmt_best_mean_std(values: list[float]) -> str:
    """'8.75' for one value, 'best (mean±std)' (sample std) for several, as in Table 6."""
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return (f"{min(values):.2f} ({statistics.fmean(values):.2f}"
            f"±{statistics.stdev(values):.2f})")


def fmt_paper(value: float | None, row: PaperRow, with_mean: bool = False) -> str:
    if value is None:
        return "–"
    s = f"{value:.{row.digits}f}"
    if with_mean and row.mean is not None and row.std is not None:
        s += f" ({row.mean:.{row.digits}f}±{row.std:.{row.digits}f})"
    return s + (row.note or "")


def fmt_millions(n: float | int | None) -> str:
    """Parameter counts like the paper: 0.27M, 1.73M, 19.4M."""
    if n is None or (isinstance(n, float) and math.isnan(n)) or pd.isna(n):
        return ""
    m = float(n) / 1e6
    return f"{m:.2f}M" if m < 10 else f"{m:.1f}M"


def _s(v) -> str:
    """A cell for a possibly-missing string value."""
    return "" if v is None or (not isinstance(v, str) and pd.isna(v)) else str(v)


def fmt_pct(err) -> str:
    if err is None or pd.isna(err):
        return ""
    return f"{pct(err):.2f}"


def fmt_wall(s) -> str:
    if s is None or pd.isna(s):
        return ""
    s = float(s)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


# ---------------------------------------------------------------- selection

def usable(runs: pd.DataFrame, kind: str = "run") -> pd.DataFrame:
    """Completed runs of one kind: the only ones paper tables use."""
    return runs[(runs["status"] == COMPLETED) & (runs["kind"] == kind)]


def select(runs: pd.DataFrame, match: Match) -> pd.DataFrame:
    """The completed runs that belong to a paper row (by config, never by folder name)."""
    df = usable(runs, match.kind)
    df = df[df["dataset"] == match.dataset]
    if match.test_mode is not None:
        df = df[df["test_mode"] == match.test_mode]
    if match.depth is not None:
        df = df[df["depth"] == match.depth]
    if match.shortcut is not None:
        df = df[df["shortcut"] == match.shortcut]
    if match.block is not None:
        df = df[df["block"].fillna("").astype(str).str.lower() == match.block.lower()]
    return df


def _prefer_full(df: pd.DataFrame) -> tuple[pd.DataFrame, bool]:
    """Full-budget runs when there are any (reduced ones are then left out), else the reduced."""
    full = df[~df["reduced"]]
    if len(full):
        return full, False
    return df, len(df) > 0


def make_cell(df: pd.DataFrame, col: str) -> Cell:
    df, reduced = _prefer_full(df)
    vals = [pct(v) for v in df[col] if v is not None and not pd.isna(v)]
    whys = sorted({str(w) for w in df["reduced_why"].dropna()}) if reduced else []
    return Cell(vals, reduced=reduced and bool(vals), why=whys)


def _reduced_note(items: list[tuple[str, Cell]]) -> list[str]:
    parts = []
    for label, cell in items:
        if cell.reduced:
            parts.append(f"{label}: {'; '.join(cell.why) or 'reduced budget'}")
    parts = list(dict.fromkeys(parts))
    if not parts:
        return []
    return [f"{REDUCED_MARK} reduced budget, not a full reproduction — " + " | ".join(parts)]


def _label(depth, shortcut, block) -> str:
    d = "?" if depth is None or pd.isna(depth) else int(depth)
    if shortcut == "none":
        base = f"plain-{d}"
    else:
        base = f"ResNet-{d} {shortcut}"
    if block and str(block).lower() not in ("basic", "plain", "bottleneck"):
        base += f" ({block})"
    elif block and str(block).lower() == "bottleneck" and (depth is None or depth < 50):
        base += " (bottleneck)"
    return base


def _extras(runs: pd.DataFrame, dataset: str, test_mode: str, taken: set[int]) -> list[tuple]:
    """(depth, shortcut, block) groups of matching runs that no paper row took."""
    df = usable(runs)
    df = df[(df["dataset"] == dataset) & (df["test_mode"] == test_mode)
            & df["shortcut"].notna() & ~df.index.isin(list(taken))]
    keys = []
    for _, r in df.iterrows():
        k = (None if pd.isna(r["depth"]) else int(r["depth"]), r["shortcut"],
             None if pd.isna(r["block"]) else str(r["block"]))
        if k not in keys:
            keys.append(k)
    return sorted(keys, key=lambda k: (k[1] != "none", k[0] or 0, k[1], k[2] or ""))


def _group(runs: pd.DataFrame, dataset: str, test_mode: str, key: tuple) -> pd.DataFrame:
    depth, shortcut, block = key
    df = usable(runs)
    df = df[(df["dataset"] == dataset) & (df["test_mode"] == test_mode)
            & (df["shortcut"] == shortcut)]
    df = df[df["depth"].isna()] if depth is None else df[df["depth"] == depth]
    df = df[df["block"].isna()] if block is None else df[df["block"] == block]
    return df


def _common_notes(runs: pd.DataFrame, dataset: str) -> list[str]:
    notes = [NOTE_DIFF, NOTE_STD, NOTE_FINAL]
    df = runs[(runs["dataset"] == dataset) & (runs["kind"] == "run")]
    unknown = df[df["shortcut"].isna()]
    if len(unknown):
        notes.append(f"{len(unknown)} {dataset} run(s) record no shortcut option and are left out: "
                     + ", ".join(unknown["run_dir"]))
    notdone = df[df["status"] != COMPLETED]
    if len(notdone):
        notes.append(f"{len(notdone)} {dataset} run(s) did not complete and are left out: "
                     + ", ".join(f"{r.run_dir} ({r.status})" for r in notdone.itertuples()))
    return notes


# ---------------------------------------------------------------- the tables

def runs_table(runs: pd.DataFrame) -> Table:
    """The generic table of every run: spec, params, FLOPs, errors, wall time, hardware, status,
    budget."""
    rows = []
    for r in runs.itertuples(index=False):
        kind = r.kind
        if kind == "trial":
            kind = f"trial #{'' if pd.isna(r.trial) else int(r.trial)}" + (f" ({r.study})" if _s(r.study) else "")
        elif kind == "ensemble" and not pd.isna(r.members):
            kind = f"ensemble of {int(r.members)}"
        rows.append({
            "run": r.run_dir,
            "kind": kind,
            "spec": _s(r.name),
            "dataset": _s(r.dataset),
            "depth": "" if pd.isna(r.depth) else str(int(r.depth)),
            "shortcut": _s(r.shortcut),
            "block": _s(r.block),
            "test": _s(r.test_mode),
            "params": format_count(r.params),
            "FLOPs": format_count(r.flops),
            "seed": "" if pd.isna(r.seed) else str(int(r.seed)),
            "status": r.status,
            "iters": "" if pd.isna(r.iters) else str(int(r.iters)),
            "top-1 err %": fmt_pct(r.test_err),
            "top-5 err %": fmt_pct(r.top5_err),
            "val err %": fmt_pct(r.val_err),
            "wall": fmt_wall(r.wall_s),
            "hardware": _s(r.hardware),
            "budget": ("reduced: " + (_s(r.reduced_why) or "?")) if r.reduced else "full",
        })
    cols = ["run", "kind", "spec", "dataset", "depth", "shortcut", "block", "test", "params",
            "FLOPs", "seed", "status", "iters", *ERROR_COLUMNS, "wall", "hardware", "budget"]
    frame = pd.DataFrame(rows, columns=cols)
    notes = ["Errors: final evaluation of each run, percent; shortcut 'none' is a plain net."]
    nred = int(runs["reduced"].sum())
    if nred:
        notes.append(f"{nred} of {len(runs)} runs used a reduced budget (see the budget column).")
    return Table("runs", f"Runs ({len(runs)})", frame, notes, matched=len(runs))


def _net(r) -> str:
    """A run's net as the paper names it (ResNet-20 A, plain-34), or by its spec's name where its
    blocks are not the paper's or the record lacks the depth or the shortcut option (ensembles,
    old records)."""
    if not _s(r.shortcut) or pd.isna(r.depth):
        return _s(r.name)
    return other_net_label(r) or _label(int(r.depth), r.shortcut, _s(r.block) or None)


def short_runs_table(runs: pd.DataFrame) -> Table:
    """The runs table as the terminal shows it by default (``--wide``: every column): the run,
    its net, status, the error columns that any run has, and wall time. A reduced-budget run's
    errors carry the mark, as the paper tables' cells do."""
    full = runs_table(runs).frame
    frame = pd.DataFrame({
        "run": full["run"],
        "net": [_net(r) for r in runs.itertuples(index=False)],
        "status": full["status"],
    })
    mark = [REDUCED_MARK if reduced else "" for reduced in runs["reduced"]]
    for col in ERROR_COLUMNS:
        if (full[col] != "").any():
            frame[col] = [v + m if v else "" for v, m in zip(full[col], mark)]
    frame["wall"] = full["wall"]
    notes = ["Errors: final evaluation of each run, percent. --wide shows every column."]
    nred = int(runs["reduced"].sum())
    if nred:
        notes.append(f"{REDUCED_MARK} reduced budget ({nred} of {len(runs)} runs); --wide "
                     "shows why.")
    return Table("runs", f"Runs ({len(runs)})", frame, notes, matched=len(runs))


def table2(runs: pd.DataFrame) -> Table:
    by = {row.label: row for row in TABLE2}
    out, items, used = [], [], 0
    for depth in (18, 34):
        p, r = by[f"plain-{depth}"], by[f"ResNet-{depth}"]
        cp = make_cell(select(runs, p.match), "test_err")
        cr = make_cell(select(runs, r.match), "test_err")
        used += cp.n + cr.n
        items += [(p.label, cp), (r.label, cr)]
        out.append({
            "": f"{depth} layers",
            "plain (ours)": cp.text(), "plain (paper)": fmt_paper(p.top1, p), "Δ plain": cp.diff(p.top1),
            "ResNet (ours)": cr.text(), "ResNet (paper)": fmt_paper(r.top1, r), "Δ ResNet": cr.diff(r.top1),
        })
    notes = _reduced_note(items) + _common_notes(runs, "imagenet")
    notes.append("Matches: dataset imagenet, test_mode 10crop; plain = shortcut none, "
                 "ResNet = option A.")
    return Table("table2", CAPTIONS[2], pd.DataFrame(out), notes, matched=used)


def _top15_table(num: int, rows: list[PaperRow], runs: pd.DataFrame, test_mode: str,
                 taken: set[int], label_col: str) -> Table:
    out, items, used = [], [], 0
    for p in rows:
        if p.match is None:
            c1 = c5 = Cell([])
        else:
            df = select(runs, p.match)
            taken |= set(df.index)
            c1, c5 = make_cell(df, "test_err"), make_cell(df, "top5_err")
            used += max(c1.n, c5.n)
            items.append((p.label, c1))
        out.append({
            label_col: p.label,
            "top-1 (ours)": c1.text(), "top-1 (paper)": fmt_paper(p.top1, p), "Δ top-1": c1.diff(p.top1),
            "top-5 (ours)": c5.text(), "top-5 (paper)": fmt_paper(p.top5, p), "Δ top-5": c5.diff(p.top5),
            "runs": "" if p.match is None else str(max(c1.n, c5.n)),
        })
    for key in _extras(runs, "imagenet", test_mode, taken):
        df = _group(runs, "imagenet", test_mode, key)
        c1, c5 = make_cell(df, "test_err"), make_cell(df, "top5_err")
        used += max(c1.n, c5.n)
        label = _label(*key) + " (ours only)"
        items.append((label, c1))
        out.append({label_col: label, "top-1 (ours)": c1.text(), "top-1 (paper)": "",
                    "Δ top-1": "", "top-5 (ours)": c5.text(), "top-5 (paper)": "",
                    "Δ top-5": "", "runs": str(max(c1.n, c5.n))})
    notes = _reduced_note(items) + _common_notes(runs, "imagenet")
    notes.append(f"Matches: dataset imagenet, test_mode {test_mode}, by depth and shortcut option"
                 "; ResNet-50/101/152 also block bottleneck. Rows without a run count are the "
                 "paper's references (other nets).")
    return Table(f"table{num}", CAPTIONS[num], pd.DataFrame(out), notes, matched=used)


def table3(runs: pd.DataFrame) -> Table:
    taken: set[int] = set()
    for p in TABLE2:  # runs shown in Table 2 (18-layer nets) are not extras of Table 3
        taken |= set(select(runs, p.match).index)
    return _top15_table(3, TABLE3, runs, "10crop", taken, "model")


def table4(runs: pd.DataFrame) -> Table:
    return _top15_table(4, TABLE4, runs, "multiscale", set(), "method")


def table5(runs: pd.DataFrame) -> Table:
    out, items, used = [], [], 0
    for p in TABLE5:
        c5 = make_cell(select(runs, p.match), "top5_err") if p.match else Cell([])
        if p.match:
            used += c5.n
            items.append((p.label, c5))
        out.append({"method": p.label, "top-5 (ours)": c5.text(), "top-5 (paper)": fmt_paper(p.top5, p),
                    "Δ top-5": c5.diff(p.top5), "runs": "" if p.match is None else str(c5.n)})
    notes = _reduced_note(items) + [NOTE_DIFF, NOTE_STD,
             "Ours: completed ensembles (`resdsl ensemble`) of ImageNet runs, top-5 error on our "
             "test split; the paper's numbers are from the ImageNet test server."]
    return Table("table5", CAPTIONS[5], pd.DataFrame(out), notes, matched=used)


def table6(runs: pd.DataFrame) -> Table:
    out, items, used = [], [], 0
    taken: set[int] = set()

    def add(method, layers, pparams, df, paper_txt, paper_best):
        nonlocal used
        cell = make_cell(df, "test_err")
        used += cell.n
        items.append((f"{method}-{layers}" if layers else method, cell))
        ours_params = fmt_millions(df["params"].dropna().iloc[0]) if len(df["params"].dropna()) else ""
        out.append({"method": method, "layers": "" if layers is None else str(layers),
                    "params (paper)": pparams or "", "params (ours)": ours_params,
                    "error (ours)": cell.text(), "error (paper)": paper_txt,
                    "Δ": cell.diff(paper_best), "runs": str(cell.n)})

    resnet_rows = [p for p in TABLE6 if p.match is not None]
    for p in TABLE6:
        if p.match is None:
            out.append({"method": p.label, "layers": "" if p.layers is None else str(p.layers),
                        "params (paper)": p.params or "", "params (ours)": "", "error (ours)": "",
                        "error (paper)": fmt_paper(p.top1, p, with_mean=True), "Δ": "", "runs": ""})
    # plain nets: ours only (the paper plots them in Fig. 6 but prints no number)
    plain = usable(runs)
    plain = plain[(plain["dataset"] == "cifar10") & (plain["test_mode"] == "single")
                  & (plain["shortcut"] == "none")]
    depths = sorted({int(d) for d in plain["depth"].dropna()})
    for d in depths:
        df = plain[plain["depth"] == d]
        taken |= set(df.index)
        add("plain", d, "", df, "", None)
    for p in resnet_rows:
        df = select(runs, p.match)
        taken |= set(df.index)
        add(p.label, p.layers, p.params, df, fmt_paper(p.top1, p, with_mean=True), p.top1)
    for key in _extras(runs, "cifar10", "single", taken):
        depth, shortcut, block = key
        df = _group(runs, "cifar10", "single", key)
        method = "ResNet " + shortcut + " (ours only)"
        if block and block.lower() not in ("basic", "plain"):
            method += f" [{block}]"
        add(method, depth, "", df, "", None)
    notes = _reduced_note(items) + _common_notes(runs, "cifar10")
    notes.append("Matches: dataset cifar10, test_mode single, by depth (6n+2) and shortcut "
                 "(ResNet = option A as in the paper; plain = shortcut none). Plain nets have no "
                 f"number in the paper's Table 6 (Fig. 6 plots depths {', '.join(map(str, TABLE6_PLAIN_DEPTHS))}).")
    return Table("table6", CAPTIONS[6], pd.DataFrame(out), notes, matched=used)


PAPER_TABLES = {"table2": table2, "table3": table3, "table4": table4, "table5": table5,
                "table6": table6}


def build_tables(runs: pd.DataFrame, all_tables: bool = False) -> list[Table]:
    """The runs table, then every paper table with at least one run (or all of them)."""
    tables = [runs_table(runs)]
    for build in PAPER_TABLES.values():
        t = build(runs)
        if all_tables or t.matched:
            tables.append(t)
    return tables
