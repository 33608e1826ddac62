"""`resdsl sweep`: the typer front end. Its options become a plan (resdsl.sweep.plan), the plan
runs on this machine (resdsl.sweep.run), and the study is shown (resdsl.sweep.display)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer

from resdsl.cli_common import choices_metavar, complete_choices, parse_spec_overrides
from resdsl.sweep.plan import PRUNERS, SAMPLERS
from resdsl.sweep.space import COUNT_METRICS, ROW_METRICS
from resdsl.train import options as opt

# The sweep's modules are light at import (optuna, torch and pandas are imported where used);
# tests/test_cli_startup.py holds them to it.


@opt.with_train_options(exclude=("seed", "sync_bn"), aliases=False)  # --workers: trials at once
def sweep_command(
    ctx: typer.Context,
    spec: str = typer.Argument(..., metavar="SPEC", help="A .net file, or the name of a shipped spec."),
    grid: Optional[list[str]] = typer.Option(None, "--grid", metavar="NAME=V1,V2,...",
        help="A grid dimension: a spec parameter or a training field (lr, batch_size, ...). Repeat for more."),
    sampler: Optional[str] = typer.Option(None, "--sampler", metavar=choices_metavar(SAMPLERS), autocompletion=complete_choices(SAMPLERS),
        help="How trials are chosen (default: grid with --grid, else tpe)."),
    sampler_seed: Optional[int] = typer.Option(None, "--sampler-seed", metavar="S",
        help="Seed the tpe/random draws (trial k from S and k): one worker on the same CPU repeats the study design for design; several workers and machines still draw different designs. A seeded search is a study of its own."),
    trials: Optional[int] = typer.Option(None, "--trials", metavar="N", help="Designs to train (tpe/random: required unless --timeout; grid: at most N points). Designs rejected by --max-flops/--max-params do not count."),
    timeout: Optional[float] = typer.Option(None, "--timeout", metavar="SECONDS", help="Start no new trial after this many seconds."),
    seeds: int = typer.Option(1, "--seeds", metavar="K", help="Train every configuration with seeds 0..K-1 (mean±std in the table)."),
    objective: str = typer.Option("error", "--objective", metavar="METRIC[,METRIC]",
        help="error (the validation error; the test error on ImageNet) or one of "
             + ", ".join(ROW_METRICS + COUNT_METRICS) + "; two or more (e.g. error,flops) for a Pareto front."),
    pruner: str = typer.Option("none", "--pruner", metavar=choices_metavar(PRUNERS), autocompletion=complete_choices(PRUNERS),
        help="Stop unpromising trials early, from their intermediate evaluations."),
    max_flops: Optional[str] = typer.Option(None, "--max-flops", metavar="N", help="Reject designs with more multiply-adds before training (e.g. 41M, 1.2G), counted at the input trained (the spec's, or --input)."),
    max_params: Optional[str] = typer.Option(None, "--max-params", metavar="N", help="Reject designs with more parameters before training (e.g. 1.7M)."),
    out: Optional[Path] = typer.Option(None, "--out", metavar="DIR", help="Study folder: study.db, study.csv, runs/ (default reports/sweeps/STUDY)."),
    study_name: Optional[str] = typer.Option(None, "--study", metavar="NAME", help="Study name (default: the network's name and a hash of the sweep's settings)."),
    storage: Optional[str] = typer.Option(None, "--storage", metavar="URL", help="Optuna storage URL (default sqlite:///OUT/study.db)."),
    workers: int = typer.Option(1, "--workers", metavar="N", help="Trials run at once on this machine (processes; CPU threads are split)."),
    reuse: bool = typer.Option(True, "--reuse/--no-reuse", help="Reuse completed runs with the same content hash."),
    set_: opt.SetParam = None,
    *,
    train_options: dict,
):
    """Train many configurations of one spec as one Optuna study, with a table at the end.

    The search space: with --grid, exactly the grid's names vary (spec parameters or training
    fields such as lr); without it, every declared space of the spec (param n = 3 in 1..200)
    varies except those fixed with --NAME VALUE. The default objective is the validation error
    of the final evaluation (a held-out split: nobody tunes on the test set).

    Every trial is a normal `resdsl train` run folder under OUT/runs/, tagged with its trial in
    config.json; OUT also holds study.db and study.csv. A trial whose spec, parameters, recipe
    and seed equal a completed run (content hash) anywhere under reports/ reuses it. Diverged or
    failing trials are recorded with their reason and the sweep goes on. Re-running the same
    command resumes the study: finished trials are not repeated; interrupted ones (Ctrl-C) and
    those of a killed process (no heartbeat for 40 s, or a dead pid on this machine) are retried.

    Designs over --max-flops/--max-params, or whose spec does not check with the sampled values,
    are rejected before training: listed in the study (PRUNED, with the reason), not counted in
    --trials. After 50 rejections in a row under tpe (500 under random; once designs are
    admitted, 10 times the draws each took), or when every grid point is rejected, the sweep
    stops with a message and exit code 2.

    Several machines on one study: give every machine the same --storage URL and --study NAME
    and its own --out (pip install 'resdsl[postgres]'; the password in PGPASSWORD or
    ~/.pgpass). Each machine queues what is missing under the server's lock and takes trials
    from the shared queue; runs are written to each machine's --out. The study opens as it is
    in the dashboard:

    \b
      optuna-dashboard sqlite:///OUT/study.db

    Examples:

    \b
      resdsl sweep specs/cifar_6n2.net --grid n=3,5,7,9 --grid shortcut=none,A --seeds 5
      resdsl sweep cifar_6n2 --n 18 --grid shortcut=A,B,C --val-split 5000
      resdsl sweep cifar_6n2 --data synthetic --grid n=1,2 --grid lr=0.1,0.05 --iters 300 --workers 2
      resdsl sweep cifar_6n2 --sampler tpe --trials 40 --objective error,flops --max-flops 100M
      resdsl sweep specs/regnet.net --sampler random --trials 32 --max-flops 400M --data synthetic --sampler-seed 0
      resdsl sweep cifar_6n2 --shortcut A --width 16 --sampler tpe --trials 30 --pruner median
      resdsl sweep cifar_6n2 --grid n=3,5,7 --storage postgresql://resdsl@dbhost:5432/resdsl --study plain-vs-res
    """
    from resdsl.errors import SweepError
    from resdsl.sweep.display import show_results
    from resdsl.sweep.plan import SweepOptions, plan_sweep
    from resdsl.sweep.run import run_sweep
    from resdsl.sweep.study import quiet_optuna
    from resdsl.train.scalars import check_scalars_dir

    quiet_optuna()
    options = SweepOptions(
        grid=list(grid or []), sampler=sampler, sampler_seed=sampler_seed, trials=trials,
        timeout=timeout, seeds=seeds, objective=objective, pruner=pruner, max_flops=max_flops,
        max_params=max_params, out=out, study_name=study_name, storage=storage, workers=workers,
        reuse=reuse)
    overrides = parse_spec_overrides(ctx.args, set_)
    # where the scalars go changes no result: checked here and kept out of the plan's checks
    # and of the study's default name, then every trial's runs get a folder in it
    scalars_root = train_options.pop("tensorboard")
    if scalars_root is not None:
        scalars_root = check_scalars_dir(scalars_root)
    plan = plan_sweep(spec, overrides, train_options, options)
    plan.train["tensorboard"] = scalars_root
    end = run_sweep(plan)
    show_results(plan)
    if end.error:
        raise SweepError(end.error)
    if end.interrupted:
        print("resdsl: sweep interrupted; finished runs and the study are kept. Re-run the "
              "same command to continue.", file=sys.stderr)
        raise typer.Exit(130)

