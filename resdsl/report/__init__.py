"""`resdsl report`: run records -> the paper's tables and figures, with the paper's numbers.

Layers: records (run folders -> DataFrame + bad runs), paper (published numbers), tables (pure
DataFrame builders), figures (matplotlib, Agg), render (rich/md/csv/latex/html), command (typer).
"""

from resdsl.report.records import BadRun, RunSet, apply_filters, load_runs
from resdsl.report.tables import Table, build_tables

__all__ = ["BadRun", "RunSet", "Table", "apply_filters", "build_tables", "load_runs"]
