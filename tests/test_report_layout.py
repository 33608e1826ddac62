"""Output that fits the terminal and files rounded to what they mean: the report's tables and the
sweep's result table at 80 columns, runs.csv and study.csv, and the figures' properties (Agg)."""

from __future__ import annotations

import json
import re
import warnings
from csv import DictReader
from pathlib import Path

import pytest
from typer.testing import CliRunner

from resdsl.cli import app
from resdsl.report.command import build_report
from resdsl.report.figures import figure_png
from test_report import write_run

LONG = "runs/cifar_6n2-n3_shortcutA_width16-s{seed}-20250101-120000"


def report(root: Path, *args: str, columns: int = 80) -> str:
    r = CliRunner().invoke(app, ["report", str(root), *args], env={"COLUMNS": str(columns)},
                           prog_name="resdsl")
    assert r.exit_code == 0, r.output
    return r.output


def rows_of(text: str, first_word: str) -> list[str]:
    return [line for line in text.splitlines() if line.split()[:1] == [first_word]]


@pytest.fixture(scope="module")
def cifar(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("layout")
    for seed, err in enumerate([0.0891, 0.0862, 0.0905], start=1):
        write_run(root, LONG.format(seed=seed), name="cifar_resnet", depth=20, seed=seed,
                  test_err=err, val_err=0.0712 + seed / 1000)
    write_run(root, "runs/plain20", name="cifar_plain", depth=20, shortcut="none",
              block="plain", test_err=0.0990, val_err=0.0801)
    write_run(root, "runs/quick56", name="cifar_resnet", depth=56, iters=2000,
              recipe_iters=2000, test_err=0.6376999999999999, wall_s=1234.5678, val_err=0.5)
    return root


def test_runs_table_fits_80_columns_with_its_error_columns(cifar):
    out = report(cifar)
    assert all(len(line.rstrip()) <= 80 for line in out.splitlines()), out
    runs = out[:out.index("Table 6.")]
    for word in ("top-1", "err", "%", "val", "wall", "status", "net"):
        assert word in runs.split(), word
    # each run's row keeps its net, status and errors, no word folded
    assert [line.split()[1:5] for line in runs.splitlines() if "ResNet-20 A" in line] == [
        ["ResNet-20", "A", "completed", "8.91"], ["ResNet-20", "A", "completed", "8.62"],
        ["ResNet-20", "A", "completed", "9.05"]]
    assert re.search(r"plain-20\s+completed\s+9\.90\s+8\.01\s+20m34s", runs)
    quick = next(line for line in runs.splitlines() if "ResNet-56 A" in line)
    assert quick.split()[-3:] == ["63.77*", "50.00*", "20m34s"]   # reduced: marked, as in tables
    assert "* reduced budget (1 of 5 runs); --wide shows why." in runs
    header = next(line for line in runs.splitlines() if line.startswith("run "))
    assert header.split() == ["run", "net", "status", "top-1", "err", "%", "val", "err", "%",
                              "wall"]   # no top-5 column: no run has a top-5 error


def test_runs_table_calls_a_net_of_other_blocks_by_its_spec_name(tmp_path):
    """A RegNetX run (x_block, projection shortcuts) is not the paper's "ResNet-38 B"; a run of
    the paper's bottleneck blocks keeps the paper's name."""
    write_run(tmp_path, "runs/regnet", name="regnetx", depth=38, block="x_block", shortcut="B",
              test_err=0.1234)
    write_run(tmp_path, "runs/r50", name="resnet50", depth=50, block="bottleneck", shortcut="B",
              test_err=0.2)
    out = report(tmp_path)
    assert all(len(line.rstrip()) <= 80 for line in out.splitlines()), out
    regnet = next(line for line in out.splitlines() if line.startswith("runs/regnet"))
    assert "regnetx, 38 layers (x_block)" in regnet and "ResNet" not in regnet
    assert "12.34" in regnet
    r50 = next(line for line in out.splitlines() if line.startswith("runs/r50"))
    assert "ResNet-50 B" in r50


def test_wide_runs_table_has_every_column(cifar):
    out = report(cifar, "--wide")
    header = next(line for line in out.splitlines() if line.startswith("run "))
    assert header.split() == ["run", "kind", "spec", "dataset", "depth", "shortcut", "block",
                              "test", "params", "FLOPs", "seed", "status", "iters", "top-1",
                              "err", "%", "top-5", "err", "%", "val", "err", "%", "wall", "hardware",
                              "budget"]
    row = next(line for line in out.splitlines() if line.startswith("runs/quick56"))
    assert {"63.77", "50.00", "20m34s", "40.8M"} <= set(row.split())
    assert row.rstrip().endswith("reduced: 2000 of 64000 iterations")


def test_the_wide_table_and_runs_csv_say_what_trained_each_run(tmp_path):
    """A run's summary segments name the machines that trained it, in order; a record from before
    segments has none, and the column stays blank rather than guessing."""
    moved = write_run(tmp_path, "runs/moved", name="cifar_resnet", depth=20, test_err=0.0836)
    summary = json.loads((moved / "summary.json").read_text())
    cpu = {"device": "cpu", "threads": 2, "world_size": 1}
    summary["segments"] = [
        {"from_iter": 0, "to_iter": 30000, "hardware": "AMD EPYC 9R14", **cpu},
        {"from_iter": 30000, "to_iter": 41000, "hardware": "Intel(R) Xeon(R) Processor", **cpu},
        {"from_iter": 41000, "to_iter": 52000, "hardware": "AMD EPYC 9R14", **cpu},
        {"from_iter": 52000, "to_iter": 64000, "device": "cuda:0", "threads": 16, "world_size": 4,
         "hardware": "NVIDIA H100 80GB HBM3"}]
    (moved / "summary.json").write_text(json.dumps(summary))
    write_run(tmp_path, "runs/older", name="cifar_resnet", depth=20, test_err=0.09)
    expected = ("AMD EPYC 9R14 (2 threads) + Intel(R) Xeon(R) Processor (2 threads) + "
                "4 x NVIDIA H100 80GB HBM3")
    out = report(tmp_path, "--wide", columns=400)
    assert expected in next(line for line in out.splitlines() if line.startswith("runs/moved"))
    report(tmp_path, "--out", str(tmp_path / "site"))
    rows = {r["run_dir"]: r for r in DictReader((tmp_path / "site" / "runs.csv").open())}
    assert rows["runs/moved"]["hardware"] == expected and rows["runs/older"]["hardware"] == ""


def test_table6_keeps_its_last_column_at_80_columns(cifar):
    out = report(cifar)
    table6 = out[out.index("Table 6."):]
    header = next(line for line in table6.splitlines() if line.startswith("method"))
    assert header.split()[-2:] == ["Δ", "runs"]
    r20 = next(line for line in table6.splitlines() if re.match(r"ResNet\s+20\s", line))
    assert r20.split() == ["ResNet", "20", "0.27M", "0.27M", "8.62", "8.75", "-0.13", "3"]
    assert "(8.86±0.22)" in table6       # the mean±std wraps below its best, whole
    assert all(len(line.rstrip()) <= 80 for line in table6.splitlines())


def test_csv_keeps_errors_as_fractions_rounded_like_the_tables(cifar, tmp_path):
    out = tmp_path / "rep"
    report(cifar, "--out", str(out))
    text = (out / "runs.csv").read_text()
    assert "0.6377," in text and "0.6376999" not in text
    assert ",1234.6," in text and "1234.5678" not in text
    assert "| 63.77 |" in (out / "runs.md").read_text()   # the same number, in percent


# ---------------------------------------------------------------- the sweep's tables

def test_sweep_result_table_and_study_csv(tmp_path, monkeypatch, capsys):
    import optuna
    from optuna.distributions import CategoricalDistribution
    from optuna.trial import TrialState

    from resdsl.sweep.display import show_results
    from resdsl.sweep.plan import SweepOptions, plan_sweep
    from resdsl.sweep.study import make_storage, open_study
    from resdsl.train.options import FIELDS

    train = {f.name: f.default for f in FIELDS if f.name not in ("seed", "sync_bn")}
    train.update(data="synthetic", iters=30)
    plan = plan_sweep("cifar_6n2", {}, train, SweepOptions(grid=["n=1,2,3"], out=tmp_path / "s"))
    study = open_study(plan, make_storage(plan.storage, heartbeat=False), create=True)
    dist = {"n": CategoricalDistribution([1, 2, 3])}
    for n, err in ((1, 0.6376999999999999), (2, 0.41200000000000003)):
        run = tmp_path / "s" / "runs" / f"trial-{n:04d}-n{n}-a-rather-long-folder-name"
        study.add_trial(optuna.trial.create_trial(
            params={"n": n}, distributions=dist, values=[err], user_attrs={
                "status": "completed", "val_err": err, "test_err": err + 0.01,
                "params_count": 78_042 * n, "flops": 12_000_000 * n, "wall_s": 61.23456,
                "run_dir": str(run), "iters_done": 30}))
    study.add_trial(optuna.trial.create_trial(
        params={"n": 3}, distributions=dist, state=TrialState.FAIL, user_attrs={
            "status": "diverged", "reason": "the loss became nan at iteration 12"}))
    monkeypatch.setenv("COLUMNS", "80")
    show_results(plan)
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line[:1] in "┏┃┡│└"]
    assert table and all(len(line) <= 80 for line in table), out
    cells = [re.split(r"\s*│\s*", line.strip("│ ")) for line in out.splitlines()
             if line.startswith("│") and re.match(r"│\s+\d+\s+│", line)]
    assert [c[2] for c in cells] == ["COMPLETE", "COMPLETE", "FAIL"]   # no word folded
    assert "(diverged)" in out.split()
    assert [c[3] for c in cells] == ["0.6377", "0.412", "-"]
    # the reason wraps at its spaces: every word whole
    assert {"the", "loss", "became", "nan", "at", "iteration", "12"} <= set(out.split())
    csv = (tmp_path / "s" / "study.csv").read_text()
    assert ",0.6377," in csv and "0.6376999" not in csv and "0.41200000000000003" not in csv
    assert ",61.2," in csv and "61.23456" not in csv
    # counts stay integers beside the failed trial's blanks (not 78042.0)
    rows = list(DictReader(csv.splitlines()))
    assert [(r["params"], r["flops"], r["iters_done"]) for r in rows] == [
        ("78042", "12000000", "30"), ("156084", "24000000", "30"), ("", "", "")]


# ---------------------------------------------------------------- figures (Agg)

def _figure(rep, key):
    return next(f for f in rep.figures.figures if f.key == key).figure


def _vlines(ax) -> list[float]:
    """x of the axes' vertical lines (axvline: two points at one x, spanning the axes)."""
    return sorted(float(line.get_xdata()[0]) for line in ax.lines
                  if len(set(map(float, line.get_xdata()))) == 1 and list(line.get_ydata()) == [0, 1])


def test_figure6_panels_share_the_error_axis_and_mark_the_milestones(cifar):
    fig = _figure(build_report(cifar), "figure6")
    plain, residual = fig.axes[0], fig.axes[1]
    assert plain.get_shared_y_axes().joined(plain, residual)
    assert plain.get_ylim() == residual.get_ylim()
    # the quick run's recipe has the cifar milestones too (written by write_run): one line each
    assert _vlines(plain) == [32000.0, 48000.0] and _vlines(residual) == [32000.0, 48000.0]
    assert "lr divided" in [t.get_text() for t in residual.get_legend().get_texts()]


def test_plateau_drops_are_read_from_the_recorded_lr(tmp_path):
    d = write_run(tmp_path, "in/r18", name="resnet18", dataset="imagenet", depth=18,
                  test_mode="10crop", metrics=4, iters=8000, recipe_iters=8000)
    cfg = json.loads((d / "config.json").read_text())
    cfg["recipe"].update(schedule="plateau", milestones=None)
    (d / "config.json").write_text(json.dumps(cfg))
    rows = [json.loads(line) for line in (d / "metrics.jsonl").read_text().splitlines()]
    for row, lr in zip(rows, [0.1, 0.1, 0.01, 0.001]):
        row["lr"] = lr
    (d / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    fig = _figure(build_report(tmp_path), "figure4")
    # evaluations at 2000, 4000, 6000, 8000: lr fell after those at 4000 and 6000
    assert _vlines(fig.axes[1]) == [4000.0, 6000.0] and _vlines(fig.axes[0]) == []


def test_figure7_log_scale_when_one_net_dwarfs_another(tmp_path):
    write_run(tmp_path, "a", name="r20", depth=20, responses=[1.0, 0.8, 0.6, 0.7])
    write_run(tmp_path, "b", name="p20", depth=20, shortcut="none", block="plain",
              responses=[12.0, 10.5, 11.0, 9.8])
    fig = _figure(build_report(tmp_path), "figure7")
    assert [ax.get_yscale() for ax in fig.axes] == ["log", "log"]
    assert fig.axes[0].get_ylabel() == "std (log scale)"
    write_run(tmp_path / "close", "a", name="r20", depth=20, responses=[1.0, 0.8, 0.6, 0.7])
    write_run(tmp_path / "close", "b", name="p20", depth=20, shortcut="none", block="plain",
              responses=[1.5, 1.2, 1.4, 1.1])
    fig = _figure(build_report(tmp_path / "close"), "figure7")
    assert [ax.get_yscale() for ax in fig.axes] == ["linear", "linear"]


def test_figure7_counts_sweep_trials(tmp_path):
    for t, width in enumerate((16, 32)):
        write_run(tmp_path, f"sweeps/w/runs/trial-{t}", name="cifar_resnet", depth=20,
                  iters=500, recipe_iters=500, responses=[1.16 if width == 16 else 1.32, 0.9, 0.7],
                  sweep={"study": "w", "trial": t, "params": {"width": width, "seed": 0}})
    fig = _figure(build_report(tmp_path), "figure7")
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["ResNet-20 width=16*", "ResNet-20 width=32*"]
    assert [list(line.get_ydata()) for line in fig.axes[0].lines] == [[1.16, 0.9, 0.7],
                                                                      [1.32, 0.9, 0.7]]


def test_edf_legend_keeps_values_and_run_counts_apart(tmp_path):
    for t, (n, err) in enumerate([(3, 0.10), (3, 0.12), (5, 0.08)]):
        write_run(tmp_path, f"sweeps/d/runs/trial-{t}", name="cifar_resnet", depth=6 * n + 2,
                  iters=500, recipe_iters=500, test_err=err,
                  sweep={"study": "d", "trial": t, "params": {"n": n}})
    legend = _figure(build_report(tmp_path), "sweep_d_edf").axes[0].get_legend()
    assert legend.get_title().get_text() == "n"
    assert [t.get_text() for t in legend.get_texts()] == ["all: 3 runs", "3: 2 runs", "5: 1 run"]


# ---- a design space's sweep (specs/regnet.net): continuous and many-valued parameters ----

def _space_trials(root: Path, draws: list[tuple[int, float]], responses: bool = False) -> None:
    """Trials of study 'space', each with an integer w0 and a continuous wa."""
    for t, (w0, wa) in enumerate(draws):
        write_run(root, f"sweeps/space/runs/t{t:04d}", name="regnetx", depth=50, block="x_block",
                  shortcut="B", iters=2, recipe_iters=2, test_err=0.5 + t / 100,
                  responses=[1.0, 2.0, 3.0] if responses else None,
                  sweep={"study": "space", "trial": t, "params": {"w0": w0, "wa": wa}})


def test_edf_of_a_continuous_parameter_is_split_into_ranges_in_order(tmp_path):
    """wa: 8 distinct fractional values, 4 quantile bins of 2, each named by the range of its
    values (four significant digits); w0: 8 integer values (more than 6), binned the same way and
    in numeric order, not as strings ('[104, 152]' before '[24, 56]')."""
    was = [8.61, 210.3456789, 36.44201553446822, 12.5, 99.99, 150.0001, 20.25, 55.5]
    _space_trials(tmp_path, list(zip([24, 56, 104, 152, 200, 232, 248, 256], was)))
    legend = _figure(build_report(tmp_path, edf_param="wa"), "sweep_space_edf").axes[0].get_legend()
    assert legend.get_title().get_text() == "wa"
    assert [t.get_text() for t in legend.get_texts()] == [
        "all: 8 runs", "[8.61, 12.5]: 2 runs", "[20.25, 36.44]: 2 runs", "[55.5, 99.99]: 2 runs",
        "[150, 210.3]: 2 runs"]
    legend = _figure(build_report(tmp_path), "sweep_space_edf").axes[0].get_legend()
    assert legend.get_title().get_text() == "w0"      # the default: the first swept parameter
    assert [t.get_text() for t in legend.get_texts()] == [
        "all: 8 runs", "[24, 56]: 2 runs", "[104, 152]: 2 runs", "[200, 232]: 2 runs",
        "[248, 256]: 2 runs"]


def test_edf_of_too_few_trials_of_a_continuous_parameter_is_not_split(tmp_path):
    """Three trials, three values of wa: one EDF of all of them, not three of one run each
    named 36.44201553446822."""
    _space_trials(tmp_path, [(24, 36.44201553446822), (56, 8.61), (104, 99.99)])
    fig = next(f for f in build_report(tmp_path, edf_param="wa").figures.figures
               if f.key == "sweep_space_edf")
    legend = fig.figure.axes[0].get_legend()
    assert [t.get_text() for t in legend.get_texts()] == ["all: 3 runs"]
    assert legend.get_title().get_text() == ""
    assert fig.title == "Error distribution function: study space (reduced budget)"
    assert "Not split by wa: 3 trials are too few" in fig.caption


def test_figure7_names_a_sweep_trial_by_short_numbers_in_one_legend_beside(tmp_path):
    """Trials named by their five sampled values would not fit a legend over each panel
    (matplotlib then gives up the layout, with a warning): one legend beside both, the values to
    four significant digits."""
    for t, wa in enumerate((36.44201553446822, 8.61)):
        write_run(tmp_path, f"sweeps/space/runs/t{t}", name="regnetx", depth=50, block="x_block",
                  shortcut="B", iters=2, recipe_iters=2, responses=[1.0, 2.0 + t, 3.0],
                  sweep={"study": "space", "trial": t, "params": {
                      "w0": 24, "wa": wa, "wm": 2.4899999999999998, "depth": 13,
                      "group_width": 8}})
    fig = _figure(build_report(tmp_path), "figure7")
    assert [ax.get_legend() for ax in fig.axes] == [None, None]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "regnetx, 50 layers (x_block) w0=24 wa=36.44 wm=2.49 depth=13 group_width=8*",
        "regnetx, 50 layers (x_block) w0=24 wa=8.61 wm=2.49 depth=13 group_width=8*"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")     # "constrained_layout not applied ..."
        figure_png(fig)
