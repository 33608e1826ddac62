"""Sweeps: many trainings of one spec as one Optuna study (``resdsl sweep``).

- ``space``: the search space from the spec's declared parameter spaces and --grid, objectives.
- ``study``: the study, its queue and workers, one trial = one `resdsl train` run (or K seeds),
  reuse of identical runs, budgets, pruning, heartbeats and retries.
- ``plan``: the command's options and the spec checked and turned into a ``SweepPlan``.
- ``run``: the plan run on this machine (prepare the study, local workers, --timeout, Ctrl-C).
- ``display``: the opening lines, live progress, the final table (and study.csv), the summary
  over seeds, the Pareto front.
- ``command``: the typer command, a thin front end over plan, run and display.
"""

from resdsl.sweep.space import Dim, Objective, SearchSpace, build_space, parse_grid, parse_objective

__all__ = ["Dim", "Objective", "SearchSpace", "build_space", "parse_grid", "parse_objective"]
