"""A design space end to end, as a user runs it: the RegNetX space of specs/regnet.net
(Radosavovic et al. 2020) sampled by `resdsl sweep --sampler random --max-flops`, then `resdsl
report` with its error distribution function (EDF) and error against FLOPs.

    resdsl sweep specs/regnet.net --sampler random --trials 4 --max-flops 40M --input 3x32x32 \\
        --data synthetic --iters 2 ... --out OUT
    resdsl report OUT --out OUT/report

At 3x32x32 (--input) rather than 224x224, so that a few designs train in seconds on a CPU: the
multiply-adds --max-flops limits are those of the input trained (a RegNetX at 32x32 has about a
fiftieth of its 224x224 count). Two designs are queued before the sweep samples (as
tests/test_sweep_budget.py does), so that both kinds of rejection happen every time: one that
the spec's `require` refuses (5 stages) and one over --max-flops; the sampler's own draws are
rejected mostly for their stage count (about 4 in 5 of the space has other than 4 stages).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from resdsl.cli import app
from resdsl.report.command import build_report
from resdsl.report.figures import slug

from conftest import REPO, SPECS

SPEC = SPECS / "regnet.net"
STUDY = "regnetx-space"
TRIALS = 4
INPUT = "3x32x32"
LIMIT = 40e6
SWEEP = [str(SPEC), "--sampler", "random", "--trials", str(TRIALS), "--max-flops", "40M",
         "--input", INPUT, "--data", "synthetic", "--device", "cpu", "--iters", "2",
         "--batch-size", "8", "--eval-every", "2", "--val-split", "50", "--no-reuse",
         "--study", STUDY]
# Queued before the sampler's draws: the defaults (RegNetX-200MF) but 28 blocks deep give 5
# stages; this one has 4 stages and 77.4M multiply-adds at 3x32x32.
FIVE_STAGES = {"w0": 24, "wa": 36.44, "wm": 2.49, "depth": 28, "group_width": 8}
OVER_LIMIT = {"w0": 128, "wa": 60.5, "wm": 2.2, "depth": 20, "group_width": 16}
GROUP_WIDTHS = [1, 2, 4, 8, 16, 32]


def regnet(w0: int, wa: float, wm: float, depth: int, group_width: int, q: int = 8):
    """pycls's RegNet widths and depths (generate_regnet, then adjust_block_compatibility with
    bottleneck ratio 1), written here independently of the spec: (widths, depths, groups)."""
    block_widths = [w0 + wa * j for j in range(depth)]
    steps = [round(math.log(w / w0) / math.log(wm)) for w in block_widths]
    quantized = [round(w0 * wm ** s / q) * q for s in steps]
    stage_widths = sorted(set(quantized))
    depths = [quantized.count(w) for w in stage_widths]
    groups = [min(group_width, w) for w in stage_widths]
    widths = [max(g, round(w / g) * g) for w, g in zip(stage_widths, groups)]
    return widths, depths, groups


def run(*args: str) -> subprocess.CompletedProcess:
    # one torch thread: these nets are small, and on a busy 2-core box two threads stall
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-m", "resdsl", *args], env=env, capture_output=True,
                          text=True, timeout=600)


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """(OUT, the sweep's process, the report's process, the study's trials)."""
    out = tmp_path_factory.mktemp("space") / "regnet"
    out.mkdir()
    study = optuna.create_study(study_name=STUDY, storage=f"sqlite:///{out / 'study.db'}")
    study.enqueue_trial(FIVE_STAGES)
    study.enqueue_trial(OVER_LIMIT)
    sweep = run("sweep", *SWEEP, "--out", str(out))
    assert sweep.returncode == 0, (sweep.stdout, sweep.stderr)
    report = run("report", str(out), "--out", str(out / "report"))
    assert report.returncode == 0, (report.stdout, report.stderr)
    trials = optuna.load_study(study_name=STUDY, storage=f"sqlite:///{out / 'study.db'}").trials
    return out, sweep, report, trials


def build(params: dict) -> dict:
    """What `resdsl build specs/regnet.net --w0 .. --wa .. --input 3x32x32 --json` gives."""
    args = ["build", str(SPEC), "--input", INPUT, "--json"]
    for k, v in params.items():
        args += [f"--{k}", repr(v)]
    r = CliRunner().invoke(app, args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def stages(built: dict) -> tuple[list[int], list[int]]:
    """Widths and block counts of a built RegNetX's stages s1..s4 (from their first 1x1)."""
    body = [s for s in built["stages"] if s["name"] in ("s1", "s2", "s3", "s4")]
    return [int(s["structure"][0].split(", ")[1]) for s in body], [s["count"] for s in body]


def test_rejected_designs_are_listed_with_their_reason_and_not_trained(swept):
    out, sweep, _, trials = swept
    assert "Traceback" not in sweep.stderr
    assert [t.params for t in trials[:2]] == [FIVE_STAGES, OVER_LIMIT]
    complete = [t for t in trials if t.state.name == "COMPLETE"]
    rejected = [t for t in trials if t.state.name == "PRUNED"]
    assert len(complete) == TRIALS            # rejected designs do not count toward --trials
    assert len(complete) + len(rejected) == len(trials)
    assert trials[0].user_attrs["status"] == "constraint"
    assert trials[0].user_attrs["reason"] == ("a RegNetX has 4 stages; this w0, wa, wm and depth "
                                              "give 5")
    assert trials[1].user_attrs["status"] == "over_budget"
    assert trials[1].user_attrs["flops"] == build(OVER_LIMIT)["flops"] == 77_418_368
    assert trials[1].user_attrs["reason"] == ("over --max-flops: 77.4M > 40M (77,418,368 > "
                                              "40,000,000); not trained")
    for t in rejected:
        assert t.user_attrs.get("run_dir") is None
        widths, _, _ = regnet(**t.params)
        if t.user_attrs["status"] == "constraint":   # the spec's message, with its stage count
            assert len(widths) != 4
            assert t.user_attrs["reason"] == ("a RegNetX has 4 stages; this w0, wa, wm and depth "
                                              f"give {len(widths)}")
        else:
            assert t.user_attrs["status"] == "over_budget" and len(widths) == 4
            assert t.user_attrs["flops"] > LIMIT
    # a run folder for each trained design, none for the rejected
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert len(runs) == TRIALS
    assert runs == sorted(Path(t.user_attrs["run_dir"]).name for t in complete)
    # the table lists them, study.csv too, with the spec's message
    assert "a RegNetX has 4 stages; this w0, wa, wm and depth give 5" in " ".join(sweep.stdout.split())
    csv = pd.read_csv(out / "study.csv")
    assert len(csv) == len(trials)
    assert (csv["status"] == "constraint").sum() == sum(
        t.user_attrs["status"] == "constraint" for t in trials)
    assert csv.loc[0, "reason"] == trials[0].user_attrs["reason"]


def test_the_space_is_sampled_as_declared(swept):
    """Continuous wa (log) and wm, integer w0 (step 8) and depth, group width a choice."""
    _, _, _, trials = swept
    sampled = trials[2:]
    assert len(sampled) >= TRIALS
    for t in sampled:
        p = t.params
        assert isinstance(p["w0"], int) and p["w0"] % 8 == 0 and 8 <= p["w0"] <= 256
        assert isinstance(p["depth"], int) and 12 <= p["depth"] <= 28
        assert p["group_width"] in GROUP_WIDTHS
        # continuous: fractional values no grid would give
        assert isinstance(p["wa"], float) and 8.0 <= p["wa"] <= 256.0 and not p["wa"].is_integer()
        assert isinstance(p["wm"], float) and 1.5 <= p["wm"] <= 3.0 and not p["wm"].is_integer()
    assert len({t.params["wa"] for t in sampled}) == len(sampled)


def test_each_trained_design_is_what_build_gives_for_its_values(swept):
    """Its run record's counts are `resdsl build`'s for the sampled values at the input trained,
    and build's stages are pycls's quantized linear rule."""
    _, _, _, trials = swept
    for t in (t for t in trials if t.state.name == "COMPLETE"):
        built = build(t.params)
        summary = json.loads((Path(t.user_attrs["run_dir"]) / "summary.json").read_text())
        config = json.loads((Path(t.user_attrs["run_dir"]) / "config.json").read_text())
        assert config["spec"]["input_shape"] == [3, 32, 32]
        assert config["spec"]["params"] == t.params == config["sweep"]["params"]
        assert (summary["params"], summary["flops"]) == (built["params"], built["flops"])
        assert (t.user_attrs["params_count"], t.user_attrs["flops"]) == (built["params"],
                                                                         built["flops"])
        assert built["flops"] <= LIMIT
        widths, depths, _ = regnet(**t.params)
        assert stages(built) == (widths, depths) and len(widths) == 4
        assert sum(depths) == t.params["depth"]


def test_the_report_draws_the_edf_and_error_against_flops(swept):
    out, _, report, trials = swept
    assert "Traceback" not in report.stderr and "Warning" not in report.stderr
    complete = sorted(t.number for t in trials if t.state.name == "COMPLETE")
    key = f"sweep_{slug(STUDY)}"
    for name in (f"{key}_edf", f"{key}_pareto"):
        for ext in ("png", "svg"):
            assert (out / "report" / f"{name}.{ext}").stat().st_size > 1000, name
    runs = pd.read_csv(out / "report" / "runs.csv")
    assert len(runs) == TRIALS                # a row per trained trial; rejected ones have no run
    assert sorted(runs["trial"]) == complete and set(runs["kind"]) == {"trial"}
    assert set(runs["study"]) == {STUDY}

    rep = build_report(out)
    figures = {f.key: f for f in rep.figures.figures}
    # the default split: the first swept parameter, w0, by value (4 trials: at most 4 values)
    ax = figures[f"{key}_edf"].figure.axes[0]
    legend = ax.get_legend()
    labels = [t.get_text() for t in legend.get_texts()]
    assert legend.get_title().get_text() == "w0"
    assert labels[0] == f"all: {TRIALS} runs"  # the trained designs only
    values = [int(label.split(":")[0]) for label in labels[1:]]
    assert values == sorted({t.params["w0"] for t in trials if t.state.name == "COMPLETE"})
    errors = sorted(100 * runs["test_err"])
    assert list(ax.lines[0].get_xdata()[1:-1]) == pytest.approx(errors)
    # error against FLOPs: one point per trained design
    pareto = figures[f"{key}_pareto"].figure.axes[0]
    assert pareto.get_xlabel() == "FLOPs"
    assert sorted(pareto.collections[0].get_offsets()[:, 0]) == sorted(runs["flops"])


def test_a_continuous_parameter_splits_the_edf_by_quantile_bins(swept):
    """--edf-param wa: four trials, two bins of two, labelled by the range of their values."""
    out, _, _, trials = swept
    wa = sorted(t.params["wa"] for t in trials if t.state.name == "COMPLETE")
    rep = build_report(out, edf_param="wa")
    fig = next(f for f in rep.figures.figures if f.key.endswith("_edf")).figure
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == [f"all: {TRIALS} runs", f"[{wa[0]:.4g}, {wa[1]:.4g}]: 2 runs",
                      f"[{wa[2]:.4g}, {wa[3]:.4g}]: 2 runs"]
