"""`resdsl report`: run records written here by hand -> tables checked cell by cell, files, figures."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from resdsl.errors import ReportError
from resdsl.report import paper
from resdsl.report.command import build_report, report_command
from resdsl.pareto import pareto_front
from resdsl.report.figures import edf
from resdsl.report.records import apply_filters, load_runs
from resdsl.report.render import latex_escape, render, to_markdown
from resdsl.report.tables import fmt_best_mean_std, fmt_millions, table2, table3, table4, table5, table6

# The paper beside the checkout (../shared/paper); the tests that read it skip where it is absent.
PAPER_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "paper"


# ---------------------------------------------------------------- writing run records

def write_run(root: Path, rel: str, *, name: str, dataset: str = "cifar10", depth: int = 20,
              shortcut: str | None = "A", block: str = "basic", test_mode: str = "single",
              seed: int = 0, iters: int | None = None, recipe_iters: int | None = None,
              batch: int | None = None, test_err: float = 0.1, top5: float | None = None,
              val_err: float | None = None, status: str = "completed", reduced: bool = False,
              reduced_why: str | None = None, params: int = 272474, flops: int = 40_811_008,
              wall_s: float = 1234.0, metrics: int = 4, torn: bool = False,
              responses: list[float] | None = None, sweep: dict | None = None,
              spec_params: dict | None = None, summary: bool = True) -> Path:
    d = root / rel
    d.mkdir(parents=True)
    full = {"cifar10": (64000, 128), "imagenet": (600000, 256)}.get(dataset, (1000, 32))
    recipe_iters = recipe_iters or full[0]
    iters = iters if iters is not None else recipe_iters
    batch = batch or full[1]
    cfg = {
        "resdsl": "0.1.0", "torch": "2.13", "python": "3.11", "device": "cpu",
        "spec": {"name": name, "path": f"specs/{name}.net", "sources": {}, "params": spec_params or {},
                 "input_shape": [3, 32, 32], "num_classes": 10 if dataset == "cifar10" else 1000,
                 "depth": depth, "block": block, "shortcut": shortcut},
        "recipe": {"name": "cifar" if dataset == "cifar10" else "imagenet", "data": dataset,
                   "iters": recipe_iters, "batch_size": batch, "lr": 0.1, "milestones": [32000, 48000],
                   "momentum": 0.9, "weight_decay": 1e-4, "warmup": None, "val_split": 0,
                   "seed": seed, "amp": None, "compile": False, "test_mode": test_mode, "subset": None},
        "hash": f"h-{rel}",
    }
    if sweep is not None:
        cfg["sweep"] = sweep
    (d / "config.json").write_text(json.dumps(cfg))
    rows = []
    for k in range(1, metrics + 1):
        frac = k / metrics
        rows.append({"iter": int(iters * frac), "epoch": k, "lr": 0.1, "train_loss": 1.0 / k,
                     "train_err": test_err * frac * 0.5 + 0.3 * (1 - frac),
                     "val_err": val_err, "test_err": test_err if k == metrics else test_err + 0.3 * (1 - frac),
                     "test_top5_err": top5 if k == metrics else None, "images_per_s": 100.0,
                     "elapsed_s": 10.0 * k})
    if metrics:
        text = "".join(json.dumps(r) + "\n" for r in rows)
        if torn:
            text += '{"iter": 99999, "test_err": 0.'  # a kill mid-write
        (d / "metrics.jsonl").write_text(text)
    if summary:
        final = rows[-1] if rows else {}
        (d / "summary.json").write_text(json.dumps({
            "status": status, "reason": None, "iters_done": iters, "final": final,
            "best": {"test_err": test_err, "val_err": val_err, "iter": iters},
            "params": params, "flops": flops, "wall_s": wall_s,
            "reduced": reduced, "reduced_why": reduced_why}))
    if responses is not None:
        (d / "responses.json").write_text(json.dumps(
            {"layers": [{"name": f"stage{i}", "std": s} for i, s in enumerate(responses)], "split": "test"}))
    return d


R20_ERRS = [0.0891, 0.0862, 0.0905]  # ResNet-20 option A, seeds 1..3
SWEEP = [  # (trial, width, lr, test_err, params, flops)
    (0, 16, 0.1, 0.112, 272474, 41e6), (1, 16, 0.05, 0.118, 272474, 41e6),
    (2, 32, 0.1, 0.095, 1_070_000, 160e6), (3, 32, 0.05, 0.101, 1_070_000, 160e6),
    (4, 64, 0.1, 0.090, 4_260_000, 640e6), (5, 64, 0.05, 0.120, 4_260_000, 640e6),
]


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    for seed, err in enumerate(R20_ERRS, start=1):
        write_run(root, f"cifar/resnet20-s{seed}", name="resnet20", depth=20, shortcut="A", seed=seed,
                  test_err=err, responses=[1.0, 0.8, 0.6, 0.7, 0.5, 0.4] if seed == 1 else None,
                  torn=(seed == 2))
    write_run(root, "cifar/plain20", name="plain20", depth=20, shortcut="none", block="plain",
              test_err=0.0990, responses=[1.2, 1.5, 1.1, 1.6, 1.3, 1.4])
    # reduced: the recipe itself ran 2000 iterations; the summary does not say reduced, the
    # report must still see it is short of the paper's 64000
    write_run(root, "cifar/resnet56-quick", name="resnet56", depth=56, shortcut="A",
              iters=2000, recipe_iters=2000, test_err=0.1234, params=855770, flops=125_000_000)
    write_run(root, "cifar/plain110", name="plain110", depth=110, shortcut="none", block="plain",
              test_err=0.90, status="diverged", metrics=2)
    write_run(root, "in/r34b", name="resnet34b", dataset="imagenet", depth=34, shortcut="B",
              test_mode="10crop", test_err=0.2460, top5=0.0751, params=21_800_000, flops=3_600_000_000)
    ens = root / "in/ens1"
    ens.mkdir(parents=True)
    (ens / "config.json").write_text(json.dumps({"kind": "ensemble", "members": ["../r34b"]}))
    (ens / "summary.json").write_text(json.dumps({
        "status": "completed", "reason": None, "iters_done": None,
        "final": {"test_err": 0.2101, "test_top5_err": 0.0402}, "best": {}, "params": None,
        "flops": None, "wall_s": 30.0, "reduced": False, "reduced_why": None}))
    # bad ones
    bad = root / "bad/corrupt"
    bad.mkdir(parents=True)
    (bad / "config.json").write_text('{"spec": {"name": "resnet20", "depth"')
    write_run(root, "bad/nosummary", name="resnet32", depth=32, summary=False)
    write_run(root, "bad/running", name="resnet44", depth=44, status="running", iters=1200)
    # a sweep with trials
    for t, width, lr, err, p, f in SWEEP:
        write_run(root, f"sweep/w/trial-{t}", name="resnet20", depth=20, shortcut="A", test_err=err,
                  iters=500, recipe_iters=500, params=p, flops=int(f), metrics=2,
                  sweep={"study": "w", "trial": t, "params": {"width": width, "lr": lr}},
                  spec_params={"n": 3, "width": width})
    return root


@pytest.fixture(scope="module")
def rs(records):
    return load_runs(records)


def row(table, col, value):
    df = table.frame
    hit = df[df[col] == value]
    assert len(hit) == 1, (value, df[col].tolist())
    return hit.iloc[0]


# ---------------------------------------------------------------- records

def test_loads_good_runs_and_lists_bad_ones_with_reasons(rs):
    runs = rs.runs
    assert len(runs) == 4 + 1 + 1 + 1 + 1 + len(SWEEP)  # cifar runs incl. diverged, imagenet, ens, trials
    assert sorted(runs["kind"].unique()) == ["ensemble", "run", "trial"]
    reasons = {b.run_dir: b.reason for b in rs.bad}
    assert set(reasons) == {"bad/corrupt", "bad/nosummary", "bad/running"}
    assert "not valid JSON" in reasons["bad/corrupt"]
    assert "no summary.json" in reasons["bad/nosummary"]
    assert "still running" in reasons["bad/running"] and "1200 of 64000" in reasons["bad/running"]
    ens = runs[runs["kind"] == "ensemble"].iloc[0]
    assert ens["dataset"] == "imagenet" and ens["members"] == 1  # dataset from its member
    r56 = runs[runs["run_dir"] == "cifar/resnet56-quick"].iloc[0]
    assert bool(r56["reduced"]) and r56["reduced_why"] == "2000 of 64000 iterations"
    full = runs[runs["run_dir"] == "cifar/resnet20-s1"].iloc[0]
    assert not bool(full["reduced"]) and full["shortcut"] == "A" and full["test_err"] == 0.0891
    assert runs[runs["run_dir"] == "cifar/plain20"].iloc[0]["shortcut"] == "none"
    t = runs[runs["kind"] == "trial"]
    assert set(t["study"]) == {"w"} and sorted(t["trial"].tolist()) == list(range(6))


def test_empty_and_missing_folders_are_report_errors(tmp_path):
    with pytest.raises(ReportError, match="no run records"):
        load_runs(tmp_path)
    with pytest.raises(ReportError, match="no such folder"):
        load_runs(tmp_path / "nope")
    bad = tmp_path / "only-bad"
    bad.mkdir()
    (bad / "config.json").write_text("")
    with pytest.raises(ReportError, match="none usable"):
        load_runs(tmp_path)


# ---------------------------------------------------------------- tables, cell by cell

def test_table6_cells(rs):
    t = table6(rs.runs)
    pct = [100 * e for e in R20_ERRS]  # 8.91, 8.62, 9.05
    best, mean, sd = min(pct), sum(pct) / 3, statistics.stdev(pct)
    assert (round(best, 2), round(mean, 2), round(sd, 2)) == (8.62, 8.86, 0.22)  # by hand
    r20 = t.frame[(t.frame["method"] == "ResNet") & (t.frame["layers"] == "20")].iloc[0]
    assert r20["error (ours)"] == "8.62 (8.86±0.22)"
    assert r20["error (paper)"] == "8.75"
    assert r20["Δ"] == "-0.13"  # 8.62 - 8.75
    assert r20["runs"] == "3"  # the sweep trials at depth 20 are not counted
    assert r20["params (paper)"] == "0.27M" and r20["params (ours)"] == "0.27M"
    # reduced: marked in the cell and the difference, explained in a footnote
    r56 = t.frame[(t.frame["method"] == "ResNet") & (t.frame["layers"] == "56")].iloc[0]
    assert r56["error (ours)"] == "12.34*" and r56["Δ"] == "+5.37*" and r56["error (paper)"] == "6.97"
    assert any(n.startswith("* reduced budget") and "2000 of 64000 iterations" in n for n in t.notes)
    # rows without runs: the paper's number, empty cells for ours
    r110 = t.frame[(t.frame["method"] == "ResNet") & (t.frame["layers"] == "110")].iloc[0]
    assert r110["error (paper)"] == "6.43 (6.61±0.16)"
    assert (r110["error (ours)"], r110["Δ"], r110["runs"]) == ("", "", "0")
    assert row(t, "method", "Maxout")["error (paper)"] == "9.38"
    assert row(t, "method", "Maxout")["error (ours)"] == ""
    assert row(t, "method", "FitNet")["params (paper)"] == "2.5M"
    # plain: ours only; the diverged plain-110 is left out with a note
    p20 = row(t, "method", "plain")
    assert (p20["layers"], p20["error (ours)"], p20["error (paper)"], p20["Δ"]) == ("20", "9.90", "", "")
    assert any("plain110" in n and "diverged" in n for n in t.notes)
    assert any("ddof=1" in n for n in t.notes)
    assert t.matched == 3 + 1 + 1


def test_imagenet_tables_cells(rs):
    t2 = table2(rs.runs)
    assert t2.matched == 0
    r18 = row(t2, "", "18 layers")
    assert (r18["plain (ours)"], r18["plain (paper)"], r18["Δ plain"]) == ("", "27.94", "")
    assert row(t2, "", "34 layers")["ResNet (paper)"] == "25.03"
    t3 = table3(rs.runs)
    b = row(t3, "model", "ResNet-34 B")
    assert (b["top-1 (ours)"], b["top-1 (paper)"], b["Δ top-1"]) == ("24.60", "24.52", "+0.08")
    assert (b["top-5 (ours)"], b["top-5 (paper)"], b["Δ top-5"]) == ("7.51", "7.46", "+0.05")
    assert b["runs"] == "1"
    g = row(t3, "model", "GoogLeNet")
    assert (g["top-1 (paper)"], g["top-5 (paper)"], g["top-1 (ours)"], g["runs"]) == ("–", "9.15", "", "")
    assert row(t3, "model", "ResNet-34 C")["top-1 (ours)"] == ""
    assert t3.matched == 1
    t4 = table4(rs.runs)  # multi-scale testing: our 10-crop run does not belong here
    assert t4.matched == 0 and row(t4, "method", "ResNet-34 B")["top-1 (ours)"] == ""
    assert row(t4, "method", "VGG (ILSVRC'14)")["top-5 (paper)"] == "8.43†"
    assert row(t4, "method", "VGG (v5)")["top-1 (paper)"] == "24.4"
    t5 = table5(rs.runs)
    e = row(t5, "method", "ResNet (ILSVRC'15)")
    assert (e["top-5 (ours)"], e["top-5 (paper)"], e["Δ top-5"], e["runs"]) == ("4.02", "3.57", "+0.45", "1")


def test_extra_rows_for_configurations_the_paper_lacks(tmp_path):
    write_run(tmp_path, "a", name="r50a", dataset="imagenet", depth=50, shortcut="A",
              block="bottleneck", test_mode="10crop", test_err=0.2321, top5=0.0688)
    write_run(tmp_path, "b", name="r8", depth=8, shortcut="A", test_err=0.15, iters=64000)
    rs = load_runs(tmp_path)
    t3 = table3(rs.runs)
    x = row(t3, "model", "ResNet-50 A (ours only)")
    assert (x["top-1 (ours)"], x["top-1 (paper)"], x["Δ top-1"]) == ("23.21", "", "")
    assert row(t3, "model", "ResNet-50")["top-1 (ours)"] == ""  # option B row untouched
    t6 = table6(rs.runs)
    y = t6.frame[t6.frame["layers"] == "8"].iloc[0]
    assert y["method"].startswith("ResNet A") and y["error (ours)"] == "15.00" and y["error (paper)"] == ""


def test_full_runs_win_over_reduced_ones_in_a_cell(tmp_path):
    write_run(tmp_path, "full", name="r32", depth=32, test_err=0.0760)
    write_run(tmp_path, "quick", name="r32", depth=32, test_err=0.2000, iters=1000, recipe_iters=1000)
    t = table6(load_runs(tmp_path).runs)
    r32 = t.frame[(t.frame["method"] == "ResNet") & (t.frame["layers"] == "32")].iloc[0]
    assert (r32["error (ours)"], r32["Δ"], r32["runs"]) == ("7.60", "+0.09", "1")


def test_runs_table(rs):
    from resdsl.report.tables import runs_table

    t = runs_table(rs.runs)
    assert t.frame.iloc[0]["run"].startswith("cifar/")  # runs before ensembles and trials
    r = row(t, "run", "cifar/resnet20-s1")
    assert (r["top-1 err %"], r["params"], r["FLOPs"], r["status"], r["budget"], r["wall"]) == (
        "8.91", "272K", "40.8M", "completed", "full", "20m34s")
    assert row(t, "run", "cifar/resnet56-quick")["budget"] == "reduced: 2000 of 64000 iterations"
    assert row(t, "run", "cifar/plain110")["status"] == "diverged"
    assert row(t, "run", "sweep/w/trial-3")["kind"] == "trial #3 (w)"
    assert row(t, "run", "in/ens1")["kind"] == "ensemble of 1"


# ---------------------------------------------------------------- filters

def test_filters(rs):
    f = apply_filters(rs, ["dataset=cifar10"])
    assert set(f.runs["dataset"]) == {"cifar10"} and len(f.runs) == 6 + len(SWEEP)
    f = apply_filters(rs, ["dataset=cifar10", "depth=20,56", "kind=run"])
    assert sorted(f.runs["run_dir"]) == ["cifar/plain20", "cifar/resnet20-s1", "cifar/resnet20-s2",
                                         "cifar/resnet20-s3", "cifar/resnet56-quick"]
    assert sorted(apply_filters(rs, ["shortcut=none"]).runs["run_dir"]) == ["cifar/plain110", "cifar/plain20"]
    assert set(apply_filters(rs, ["shortcut=b"]).runs["run_dir"]) == {"in/r34b"}
    assert len(apply_filters(rs, ["width=32"]).runs) == 2  # a spec/sweep parameter
    assert len(apply_filters(rs, ["spec.params.n=3"]).runs) == len(SWEEP)  # dotted config path
    assert len(apply_filters(rs, ["recipe.lr=0.1", "kind!=trial", "status=completed"]).runs) == 6
    assert len(apply_filters(rs, ["reduced=true"]).runs) == 1 + len(SWEEP)
    with pytest.raises(ReportError, match="did you mean 'dataset'"):
        apply_filters(rs, ["datset=cifar10"])
    with pytest.raises(ReportError, match="no run matches"):
        apply_filters(rs, ["dataset=mnist"])
    with pytest.raises(ReportError, match="key=value"):
        apply_filters(rs, ["cifar10"])


# ---------------------------------------------------------------- renderers

def test_text_formats(rs):
    t = table6(rs.runs)
    md = to_markdown(t)
    assert "| ResNet | 20 | 0.27M | 0.27M | 8.62 (8.86±0.22) | 8.75 | -0.13 | 3 |" in md
    tex = render(t, "latex")
    assert r"\begin{tabular}" in tex and r"8.62 (8.86$\pm$0.22)" in tex and r"\end{table}" in tex
    assert latex_escape("50% a_b & #") == r"50\% a\_b \& \#"
    csv = pd.read_csv(__import__("io").StringIO(render(t, "csv")), dtype=str, keep_default_na=False)
    assert csv.columns.tolist() == t.frame.columns.tolist() and len(csv) == len(t.frame)
    html = render(t, "html")
    assert '<td class="num reduced">12.34*</td>' in html


# ---------------------------------------------------------------- the command, files, figures

def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("report")(report_command)

    @app.command("version")
    def version() -> None:  # a second command so that "report" is a subcommand, as in the CLI
        pass

    return app


def test_command_writes_every_table_and_figure(records, tmp_path):
    out = tmp_path / "out"
    res = CliRunner().invoke(_app(), ["report", str(records), "--out", str(out), "--format", "md"],
                             env={"COLUMNS": "300"})
    assert res.exit_code == 0, res.output
    for name in ["runs.md", "runs.csv", "report.html"] + [f"table{i}.md" for i in range(2, 7)]:
        assert (out / name).stat().st_size > 0, name
    figs = ["figure4", "figure6", "figure7", "sweep_w_edf", "sweep_w_pareto"]
    from PIL import Image

    for f in figs:
        assert (out / f"{f}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
        with Image.open(out / f"{f}.png") as im:
            assert im.size[0] > 100 and im.size[1] > 100
    assert "| ResNet | 20 | 0.27M | 0.27M | 8.62 (8.86±0.22) | 8.75 | -0.13 | 3 |" in (out / "table6.md").read_text()
    runs_csv = pd.read_csv(out / "runs.csv")
    assert len(runs_csv) == 14 and "test_err" in runs_csv.columns
    page = (out / "report.html").read_text()
    assert page.count('<table class="report"') == 4  # runs, tables 3, 5, 6 (no run for 2 and 4)
    assert page.count("data:image/png;base64,") == len(figs)
    assert "8.62 (8.86±0.22)" in page and "bad/corrupt" in page and "</html>" in page
    # terminal: runs table first, then the matched paper tables, then the warning
    o = res.output
    assert o.index("Runs (14)") < o.index("Table 3.") < o.index("Table 6.") < o.index("3 run record(s) could not")
    assert "Table 2." not in o and "Table 4." not in o
    for reason in ("not valid JSON", "no summary.json", "still running"):
        assert reason in o
    assert "figure skipped" not in o  # every kind of figure had data


def test_command_formats_and_all_tables(records, tmp_path):
    r = CliRunner().invoke(_app(), ["report", str(records), "--format", "csv", "--filter", "dataset=imagenet"])
    assert r.exit_code == 0, r.output
    assert "ResNet-34 B,24.60,24.52,+0.08,7.51,7.46,+0.05,1" in r.stdout
    assert "Table 6" not in r.stdout
    r = CliRunner().invoke(_app(), ["report", str(records), "--all-tables", "--filter", "kind=ensemble"],
                           env={"COLUMNS": "300"})
    assert r.exit_code == 0 and all(f"Table {i}." in r.output for i in range(2, 7))
    out = tmp_path / "tex"
    r = CliRunner().invoke(_app(), ["report", str(records), "--out", str(out), "--format", "latex",
                                    "--filter", "kind!=trial", "--filter", "dataset=imagenet"])
    assert r.exit_code == 0, r.output
    assert {p.name for p in out.glob("*.tex")} == {"runs.tex"} | {f"table{i}.tex" for i in range(2, 7)}
    assert not list(out.glob("sweep_*"))
    assert "figure skipped" in r.output and "no imagenet run has metrics" not in r.output


def test_command_errors(tmp_path, records):
    r = CliRunner().invoke(_app(), ["report", str(tmp_path)])
    assert isinstance(r.exception, ReportError) and "no run records" in str(r.exception)
    r = CliRunner().invoke(_app(), ["report", str(records), "--filter", "depht=20"])
    assert isinstance(r.exception, ReportError) and "did you mean 'depth'" in str(r.exception)
    r = CliRunner().invoke(_app(), ["report", str(records), "--edf-param", "widht"])
    assert isinstance(r.exception, ReportError) and "did you mean 'width'" in str(r.exception)


def test_edf_param_and_sweep_helpers(records):
    rep = build_report(records, edf_param="lr")
    keys = [f.key for f in rep.figures.figures]
    assert "sweep_w_edf" in keys
    edf_fig = next(f for f in rep.figures.figures if f.key == "sweep_w_edf")
    legend = edf_fig.figure.axes[0].get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert legend.get_title().get_text() == "lr"
    assert labels == ["all: 6 runs", "0.05: 3 runs", "0.1: 3 runs"]
    x = np.array([41e6, 41e6, 160e6, 160e6, 640e6, 640e6])
    y = np.array([11.2, 11.8, 9.5, 10.1, 9.0, 12.0])
    assert pareto_front(np.column_stack([x, y])) == [0, 2, 4]
    e, f = edf([3.0, 1.0, 2.0, 2.0])
    assert e.tolist() == [1.0, 2.0, 2.0, 3.0] and f.tolist() == [0.25, 0.5, 0.75, 1.0]


def test_formatting_helpers():
    assert fmt_best_mean_std([6.43]) == "6.43"
    assert fmt_best_mean_std([6.43, 6.61, 6.79]) == "6.43 (6.61±0.18)"
    assert [fmt_millions(n) for n in (272474, 855770, 1_730_714, 19_424_000)] == ["0.27M", "0.86M", "1.73M", "19.4M"]


# ---------------------------------------------------------------- the paper's numbers

def test_reference_numbers_as_given():
    t = {(r.table, r.label, r.layers): r for r in paper.all_rows()}
    assert [t[(2, k, d)].top1 for k, d in (("plain-18", 18), ("plain-34", 34), ("ResNet-18", 18),
                                           ("ResNet-34", 34))] == [27.94, 28.54, 27.88, 25.03]
    assert (t[(3, "GoogLeNet", None)].top1, t[(3, "GoogLeNet", None)].top5) == (None, 9.15)
    assert (t[(4, "ResNet-152", 152)].top1, t[(4, "ResNet-152", 152)].top5) == (19.38, 4.49)
    assert t[(4, "VGG (ILSVRC'14)", None)].note == "†"
    assert [r.top5 for r in paper.TABLE5] == [7.32, 6.66, 6.8, 4.94, 4.82, 3.57]
    assert [r.top1 for r in paper.TABLE6][:6] == [9.38, 8.81, 8.22, 8.39, 7.54, 8.80]
    h = t[(6, "Highway", 19)]
    assert (h.mean, h.std, h.params) == (7.72, 0.16, "2.3M")
    for r in paper.all_rows():  # every row our runs can match says how
        if r.match is not None:
            assert r.match.dataset in ("cifar10", "imagenet")
    assert {r.match.test_mode for r in paper.TABLE6 if r.match} == {"single"}


@pytest.mark.skipif(not (PAPER_DIR / "tables-review.txt").exists(), reason="paper text not available")
def test_reference_numbers_against_tables_review():
    text = (PAPER_DIR / "tables-review.txt").read_text()
    text = text.split("PASCAL")[0]  # Tables 7/8 (detection) follow; they reuse model names
    rows = {}
    for line in text.splitlines():
        cells = [c.strip() for c in line.split("\t") if c.strip()]
        if len(cells) == 3 and re.fullmatch(r"[\d.]+", cells[1]) and re.fullmatch(r"[\d.]+", cells[2]):
            rows[cells[0]] = (float(cells[1]), float(cells[2]))
        if len(cells) == 4 and cells[0] == "ResNet":
            m = re.fullmatch(r"([\d.]+)(?: \(([\d.]+)±([\d.]+)\))?", cells[3])
            rows[("ResNet", int(cells[1]))] = (cells[2], float(m.group(1)),
                                               m.group(2) and float(m.group(2)), m.group(3) and float(m.group(3)))
    t3 = {r.label: r for r in paper.TABLE3}
    found3 = [k for k in rows if isinstance(k, str)]
    assert len(found3) >= 7, found3
    for label in found3:
        assert (t3[label].top1, t3[label].top5) == rows[label], label
    t6 = {r.layers: r for r in paper.TABLE6 if r.label == "ResNet"}
    found6 = [k for k in rows if isinstance(k, tuple)]
    assert len(found6) == 6
    for _, layers in found6:
        params, best, mean, std = rows[("ResNet", layers)]
        r = t6[layers]
        assert (r.params, r.top1, r.mean, r.std) == (params, best, mean or None, std or None), layers
    # Table 1 FLOPs are in the review too; Table 6 of the paper has 6 ResNet rows, all checked


@pytest.mark.skipif(not (PAPER_DIR / "deep-residual-learning.txt").exists(), reason="paper text not available")
def test_reference_numbers_in_running_text():
    text = (PAPER_DIR / "deep-residual-learning.txt").read_text()
    assert "3.57% top-5 error on the test set (table 5)" in text
    assert next(r for r in paper.TABLE5 if r.match).top5 == 3.57
    assert "single-model top-5 validation error of 4.49%" in text
    assert paper.TABLE4[-1].top5 == 4.49
    assert "vgg (ilsvrc'14) - 8.43†" in text and paper.TABLE4[0].top5 == 8.43
    assert "(6.43%, table 6)" in text and "(7.93%, table 6)" in text
    t6 = {r.layers: r.top1 for r in paper.TABLE6 if r.label == "ResNet"}
    assert (t6[110], t6[1202]) == (6.43, 7.93)
    assert "by 2.8%" in text  # ResNet-34 better than ResNet-18 by 2.8 points (27.88 - 25.03)
    assert round(27.88 - 25.03, 2) == 2.85
    assert "reduces the top-1 error by 3.5%" in text  # plain-34 vs ResNet-34
    assert round(28.54 - 25.03, 2) == 3.51


def test_rows_follow_the_config_not_the_folder_name(tmp_path):
    write_run(tmp_path, "resnet110-final", name="resnet110", depth=44, shortcut="A", test_err=0.0717)
    t = table6(load_runs(tmp_path).runs)
    r44 = t.frame[(t.frame["method"] == "ResNet") & (t.frame["layers"] == "44")].iloc[0]
    r110 = t.frame[(t.frame["method"] == "ResNet") & (t.frame["layers"] == "110")].iloc[0]
    assert (r44["error (ours)"], r44["Δ"], r110["error (ours)"]) == ("7.17", "+0.00", "")


def test_more_broken_records(tmp_path):
    write_run(tmp_path, "ok", name="r20", test_err=0.09)
    torn = write_run(tmp_path, "torn-summary", name="r20", test_err=0.09)
    (torn / "summary.json").write_text('{"status": "completed", "fin')
    arr = write_run(tmp_path, "list-config", name="r20", test_err=0.09)
    (arr / "config.json").write_text("[1, 2]")
    mid = write_run(tmp_path, "bad-metrics", name="r32", depth=32, test_err=0.08)
    (mid / "metrics.jsonl").write_text('{"iter": 1}\nnot json\n{"iter": 2}\n')
    rs = load_runs(tmp_path)
    reasons = {b.run_dir: b.reason for b in rs.bad}
    assert "summary.json is not valid JSON" in reasons["torn-summary"]
    assert "not a JSON object" in reasons["list-config"]
    assert sorted(rs.runs["run_dir"]) == ["bad-metrics", "ok"]  # a bad metrics file spoils only its curve
    rep = build_report(tmp_path)
    assert any(k.startswith("figure6: bad-metrics") for k, _ in rep.figures.skipped)
    assert [f.key for f in rep.figures.figures] == ["figure6"]


def test_html_to_stdout(records):
    r = CliRunner().invoke(_app(), ["report", str(records), "--format", "html", "--filter", "kind=trial"])
    assert r.exit_code == 0, r.output
    assert r.stdout.startswith("<!DOCTYPE html>") and r.stdout.count("data:image/png;base64,") == 2


# ---------------------------------------------------------------- records written by real training

# The paper's CIFAR ResNet, with its shortcut parameter named otherwise: the report places runs by
# the shortcut option the checked network has, not by a parameter's name.
RENAMED_SPEC = """
import "prelude"
param n = 3 in 1..200
param sc = "A" in ["none", "A", "B", "C"]
network renamed_resnet {
  input 3x32x32
  classes 10
  stem conv1 { conv(4, 3); bn; relu }
  stage conv2_x: basic(4, shortcut=sc) x n
  stage conv3_x: basic(8, shortcut=sc) x n stride 2
  stage conv4_x: basic(16, shortcut=sc) x n stride 2
  head { avgpool; fc(classes) }
}
"""


def _train(args: list[str]) -> dict:
    from resdsl.cli import app

    r = CliRunner().invoke(app, ["train", *args, "--iters", "4", "--batch-size", "16",
                                 "--eval-every", "4", "--quiet"])
    assert r.exit_code == 0, r.output
    out = Path(args[args.index("--out") + 1])
    return json.loads((out / "summary.json").read_text())


def test_real_training_records_land_in_table6(tmp_path, monkeypatch):
    """`resdsl train` on a tiny CIFAR-10 folder, then Table 6 from its records: a drift between
    what the runner writes and what the report reads fails here."""
    from cifar_folder import write_cifar

    monkeypatch.setenv("RESDSL_DATA", str(tmp_path / "cache"))
    write_cifar(tmp_path / "data")
    spec = tmp_path / "renamed.net"
    spec.write_text(RENAMED_SPEC)
    root = tmp_path / "reports"
    data = ["--data-dir", str(tmp_path / "data")]
    res = _train(["cifar_6n2", "--n", "3", "--width", "4", *data, "--out", str(root / "r20")])
    plain = _train([str(spec), "--sc", "none", *data, "--out", str(root / "plain20")])
    cfg = json.loads((root / "plain20" / "config.json").read_text())
    assert cfg["spec"]["shortcut"] == "none" and "shortcut" not in cfg["spec"]["params"]
    assert cfg["spec"]["block"] == "basic" and cfg["spec"]["depth"] == 20

    t = table6(load_runs(root).runs)
    r20 = t.frame[(t.frame["method"] == "ResNet") & (t.frame["layers"] == "20")].iloc[0]
    assert r20["error (ours)"] == f"{100 * res['final']['test_err']:.2f}*"     # * reduced budget
    assert r20["runs"] == "1" and r20["params (ours)"] == fmt_millions(res["params"])
    assert r20["Δ"] == f"{100 * res['final']['test_err'] - 8.75:+.2f}*"
    p20 = t.frame[(t.frame["method"] == "plain") & (t.frame["layers"] == "20")].iloc[0]
    assert p20["error (ours)"] == f"{100 * plain['final']['test_err']:.2f}*"
    assert p20["runs"] == "1"
    assert any(n.startswith("* reduced budget") and "4 iterations at batch 16" in n for n in t.notes)


def test_shortcut_option_comes_from_the_network():
    from resdsl.spec.analysis import shortcut_option
    from resdsl.spec import load_network

    assert [shortcut_option(load_network("cifar_6n2", {"shortcut": s})) for s in
            ("none", "A", "B", "C")] == ["none", "A", "B", "C"]
    assert shortcut_option(load_network(RENAMED_SPEC, {"sc": "B"})) == "B"
    assert shortcut_option(load_network("resnet50")) == "B"
    # identity joins inside a stage, an explicit projection branch where it downsamples
    assert shortcut_option(load_network("cifar_preact")) == "branch+identity"


def test_old_records_without_a_recorded_shortcut_use_the_spec_parameter(tmp_path):
    write_run(tmp_path, "old", name="cifar_resnet", shortcut=None, spec_params={"shortcut": "b"})
    write_run(tmp_path, "new", name="renamed", shortcut="C", spec_params={"sc": "C"})
    write_run(tmp_path, "unknown", name="mystery", shortcut=None)
    runs = load_runs(tmp_path).runs.set_index("run_dir")
    assert runs.loc["old", "shortcut"] == "B"
    assert runs.loc["new", "shortcut"] == "C"
    assert pd.isna(runs.loc["unknown", "shortcut"])
