"""Sweeps: many trainings of one spec as one Optuna study (``resdsl sweep``).

- ``space``: the search space from the spec's declared parameter spaces and --grid, objectives.
- ``study``: the study, its queue and workers, one trial = one `resdsl train` run (or K seeds),
  reuse of identical runs, budgets, pruning, heartbeats and retries.
- ``command``: the typer command, progress, the final table and study.csv.
"""

from resdsl.sweep.space import Dim, Objective, SearchSpace, build_space, parse_grid, parse_objective

__all__ = ["Dim", "Objective", "SearchSpace", "build_space", "parse_grid", "parse_objective"]
