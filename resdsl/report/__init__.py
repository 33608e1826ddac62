"""`resdsl report`: run records -> the paper's tables and figures, with the paper's numbers.

Layers: records (run folders -> DataFrame + bad runs), paper (published numbers), tables (pure
DataFrame builders), figures (matplotlib, Agg), render (rich/md/csv/latex/html), command (typer).
"""

from resdsl.lazy import lazy_exports

# Imported on first use: `resdsl --help` imports report.command, which must not wait for pandas.
__getattr__, __dir__ = lazy_exports(globals(), {
    "resdsl.report.records": ("BadRun", "RunSet", "apply_filters", "load_runs"),
    "resdsl.report.tables": ("Table", "build_tables"),
})

__all__ = ["BadRun", "RunSet", "Table", "apply_filters", "build_tables", "load_runs"]
