"""`resdsl train` and `resdsl ensemble`: thin front ends over resdsl.train."""

from __future__ import annotations

import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Optional

import typer

from resdsl.cli_common import parse_spec_overrides
from resdsl.errors import RunError
from resdsl.outputs import check_output_dir
from resdsl.train import options as opt


def _short_params(params: dict) -> str:
    parts = []
    for k in sorted(params):
        v = str(params[k]).replace("/", "_").replace(" ", "")
        parts.append(f"{k}{v}")
    s = "_".join(parts)
    return s[:60] if s else "default"


def default_out(spec_name: str, params: dict, seed: int) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    return Path("reports") / "runs" / f"{spec_name}-{_short_params(params)}-s{seed}-{stamp}"


def _is_nonempty_dir(p: Path) -> bool:
    return p.is_dir() and any(p.iterdir())


def _print_summary(s: dict, out: Path) -> None:
    from resdsl.cli_common import console

    final = s.get("final") or {}
    best = s.get("best") or {}

    def pct(v):
        return "-" if v is None else f"{100 * v:.2f}%"

    status = s["status"]
    style = {"completed": "green", "pruned": "yellow"}.get(status, "red")
    line = f"[{style}]{status}[/] after {s['iters_done']} of {s['iters']} iterations"
    if s.get("reason"):
        line += f": {s['reason']}"
    console.print(line, highlight=False)
    if final:
        extra = f" (top-5 {pct(final.get('test_top5_err'))})" if final.get("test_top5_err") is not None else ""
        val = f", val error {pct(final.get('val_err'))}" if final.get("val_err") is not None else ""
        console.print(f"test error {pct(final.get('test_err'))}{extra}{val}; best {pct(best.get('test_err'))} "
                      f"at iteration {best.get('iter')}", highlight=False)
    ips = s.get("images_per_s")
    console.print(f"wall time {s.get('wall_s', 0):.1f}s"
                  + (f", {ips:.0f} images/s" if ips else "")
                  + (f"; reduced budget: {s['reduced_why']}" if s.get("reduced") else ""), highlight=False)
    console.print(f"run record: {out}", highlight=False)


@opt.with_train_options()
def train_command(
    ctx: typer.Context,
    spec: Optional[str] = typer.Argument(None, metavar="SPEC", help="A .net file, a shipped spec name (cifar_6n2, resnet50) or spec text."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", help="Run record folder (default: a new folder under reports/runs/ named after the spec, its parameters, the seed and the time)."),
    resume: Optional[Path] = typer.Option(None, "--resume", metavar="RUN_DIR", help="Continue an interrupted run."),
    quiet: bool = typer.Option(False, "--quiet", help="No progress bar or progress lines; only one log line per evaluation."),
    set_: opt.SetParam = None,
    *,
    train_options: dict,
):
    """Train a spec with the paper's recipe and write a run record.

    Spec parameters are options too: --NAME VALUE.

    Examples:

    \b
      resdsl train specs/cifar_6n2.net --n 3 --data-dir ~/data/cifar-10-batches-py
      resdsl train cifar_6n2 --n 18 --val-split 5000 --seed 1
      resdsl train cifar_6n2 --n 1 --width 8 --data synthetic --iters 300 --quiet
      resdsl train resnet34 --recipe imagenet --data-dir /data/imagenet --amp bf16
      resdsl train --resume reports/runs/cifar_resnet-n3_shortcutA_width16-s0-20250101-120000

    Under torchrun, give spec parameters with --set (torchrun reads --n itself):

    \b
      torchrun --nproc_per_node=2 -m resdsl train cifar_6n2 --set n=9
    """
    from resdsl.train import TrainConfig, resolve
    from resdsl.train import resume as resume_run
    from resdsl.train import train as train_run

    if resume is not None:
        from resdsl.train.options import FIELDS
        from resdsl.train.runner import RESUME_CHANGES

        defaults = {f.name: f.default for f in FIELDS}
        flags = {f.name: f.flag for f in FIELDS}
        changed = {k: v for k, v in train_options.items() if v != defaults[k]}
        fixed = [flags[k] for k in changed if k not in RESUME_CHANGES]
        if spec is not None or ctx.args or set_ or out is not None or fixed:
            raise RunError("--resume continues a run with its recorded configuration; give only "
                           "--resume RUN_DIR, and where things are on this machine: "
                           + ", ".join(flags[k] for k in RESUME_CHANGES) + " (and --quiet)"
                           + (f"; not {', '.join(fixed)}" if fixed else ""))
        out_dir = check_output_dir("--resume", resume)
        try:
            summary = resume_run(resume, progress=not quiet, **changed)
        except KeyboardInterrupt:
            _interrupted(out_dir)
    else:
        if spec is None:
            raise RunError("give a spec to train (e.g. resdsl train specs/cifar_6n2.net --n 3) "
                           "or --resume RUN_DIR")
        overrides = parse_spec_overrides(ctx.args, set_)
        resolved = resolve(TrainConfig(spec=spec, overrides=overrides, **train_options))
        if out is None:
            out = default_out(resolved.net.name, resolved.net.params, resolved.seed)
        check_output_dir("--out", out)
        if _is_nonempty_dir(out) and int(os.environ.get("RANK", "0")) == 0:
            raise RunError(f"--out {out} is not empty; choose another folder, or continue the run "
                           f"there with: resdsl train --resume {out}")
        out_dir = out
        try:
            summary = train_run(resolved, out, progress=not quiet)
        except KeyboardInterrupt:
            _interrupted(out_dir)
    if int(os.environ.get("RANK", "0")) != 0:
        return
    _print_summary(summary, out_dir)
    if summary["status"] == "diverged":
        print(f"resdsl: training diverged: {summary['reason']}", file=sys.stderr)
        raise typer.Exit(1)


def _interrupted(out_dir: Path) -> None:
    print(f"resdsl: interrupted; checkpoint written. Continue with: resdsl train --resume {out_dir}",
          file=sys.stderr)
    raise typer.Exit(130)


def ensemble_command(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN_DIR", help="Run records to combine (two or more)."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", help="Ensemble record folder (default reports/runs/ensemble-<time>)."),
    device: opt.DeviceOption = "auto",
):
    """Evaluate the average of several runs' softmax outputs on their common test set.

    Example:

    \b
      resdsl ensemble reports/runs/r110-s0 reports/runs/r110-s1 --out reports/runs/ens
    """
    from resdsl.train.ensemble import ensemble

    if out is None:
        out = Path("reports") / "runs" / f"ensemble-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    check_output_dir("--out", out)
    for member in run_dirs:
        if Path(member).exists() and Path(out).exists() and Path(member).resolve() == Path(out).resolve():
            raise RunError(f"--out {out}: is one of the runs to combine; its record is never overwritten")
    s = ensemble([Path(p) for p in run_dirs], out, device=device)
    from resdsl.cli_common import console

    f = s["final"]
    top5 = f" (top-5 {100 * f['test_top5_err']:.2f}%)" if f.get("test_top5_err") is not None else ""
    console.print(f"ensemble of {len(run_dirs)} runs: test error {100 * f['test_err']:.2f}%{top5}; "
                  f"members {', '.join(f'{100 * e:.2f}%' for e in s['member_errs'])}", highlight=False)
    console.print(f"record: {out}", highlight=False)
