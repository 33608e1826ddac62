"""Run records -> one pandas DataFrame (one row per usable run) plus the list of unusable ones.

A run folder is any folder under the root that holds a `config.json` (see docs/ARCHITECTURE.md,
"Run record"). A run is unusable ("bad") when its config or summary cannot be read, when it has
no summary yet, or when it is still running; each bad run carries the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from resdsl import record
from resdsl.errors import ReportError, did_you_mean
from resdsl.report.paper import PAPER_SCHEDULE
from resdsl.text import parse_value

# Columns of the runs frame, in order. Errors are fractions in [0, 1].
COLUMNS = [
    "run_dir", "kind", "name", "dataset", "recipe", "depth", "shortcut", "block", "test_mode",
    "params", "flops", "seed", "status", "iters", "iters_full", "batch_size",
    "test_err", "top5_err", "best_test_err", "val_err", "wall_s", "reduced", "reduced_why",
    "study", "trial", "members", "hardware",
]

COMPLETED = "completed"


@dataclass
class BadRun:
    run_dir: str
    reason: str


@dataclass
class RunSet:
    """Everything the report reads: the runs frame, the unusable runs, raw configs by run_dir."""

    root: Path
    runs: pd.DataFrame
    bad: list[BadRun] = field(default_factory=list)
    configs: dict[str, dict] = field(default_factory=dict)
    spec_params: dict[str, dict] = field(default_factory=dict)
    sweep_params: dict[str, dict] = field(default_factory=dict)

    def path(self, run_dir: str) -> Path:
        return self.root / run_dir


def find_run_dirs(root: Path) -> list[Path]:
    """Every folder under root (root included) that holds a config.json, sorted."""
    root = Path(root)
    return sorted(p.parent for p in root.rglob("config.json") if p.is_file())


class _Bad(Exception):
    pass


def _read_json(path: Path, what: str) -> Any:
    try:
        return record.read_json_explained(path, what)
    except record.UnreadableFile as e:
        raise _Bad(str(e)) from None


def _num(value: Any) -> float:
    if isinstance(value, bool) or value is None:
        return math.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _int_or_none(value: Any) -> int | None:
    if isinstance(value, bool) or value is None:
        return None
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) else None


# The blocks of the paper's own nets (Fig. 2 and Fig. 5). A run built of other blocks (RegNetX's
# x_block, an SE bottleneck) is not the paper's "ResNet-38 B": labels call it by its spec's name.
PAPER_BLOCKS = frozenset({"basic", "bottleneck", "plain"})


def other_net_label(r) -> str | None:
    """A runs-frame row's label by its spec's network name, "regnetx, 38 layers (x_block)", where
    its blocks are not the paper's; None where they are (or the record names none)."""
    block = r.block if isinstance(r.block, str) and r.block else None
    if block is None or all(b.strip().lower() in PAPER_BLOCKS for b in block.split(",")):
        return None
    name = r.name if isinstance(r.name, str) and r.name else "?"
    layers = "" if r.depth is None or pd.isna(r.depth) else f", {int(r.depth)} layers"
    return f"{name}{layers} ({block})"


def hardware_text(segments: Any) -> str | None:
    """What trained a run, from its summary's segments: "Intel(R) Xeon(R) Processor (2 threads)",
    "4 x NVIDIA H100 80GB HBM3", several machines joined by " + " in the order they trained it,
    "unrecorded" for iterations trained before segments were kept; None for records with no
    segments at all. Wall times mean little without it."""
    if not isinstance(segments, list):
        return None
    names: list[str] = []
    for seg in segments:
        if not isinstance(seg, dict):
            continue
        if not seg.get("hardware"):
            text = "unrecorded"
        else:
            text, world = str(seg["hardware"]), _int_or_none(seg.get("world_size")) or 1
            threads = _int_or_none(seg.get("threads"))
            if seg.get("device") == "cpu" and threads:
                text += f" ({threads} threads)"
            if world > 1:
                text = f"{world} x {text}"
        if text not in names:
            names.append(text)
    return " + ".join(names) or None


def normalize_shortcut(value: Any) -> str | None:
    """'none' for plain nets, 'A'/'B'/'C' for the paper's options; None when not recorded."""
    if value is None:
        return None
    s = str(value).strip()
    low = s.lower()
    if low in ("none", "plain", "no", ""):
        return "none"
    if low.startswith("option"):
        s = s[6:].strip()
    return s.upper() if len(s) == 1 else s


def _dig(d: Any, *keys: str) -> Any:
    for k in keys:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _resolve_member(member: str, run_path: Path, root: Path) -> Path | None:
    p = Path(member)
    candidates = [p] if p.is_absolute() else [run_path / p, root / p, Path.cwd() / p, run_path.parent / p]
    for c in candidates:
        if (c / "config.json").is_file():
            return c
    return None


def _reduced(cfg: dict, summary: dict, dataset: str | None, iters: int | None) -> tuple[bool, str]:
    """Is the run a reduced-budget one, and why. The summary's word counts; we also apply the
    rule to what the run did (iterations done, against the paper's schedule where there is one,
    else the recipe's), for records whose summary does not say."""
    recipe = cfg.get("recipe") or {}
    if summary.get("reduced"):
        return True, str(summary.get("reduced_why") or "reduced budget (no reason recorded)")
    batch = _int_or_none(recipe.get("batch_size"))
    if dataset in PAPER_SCHEDULE:
        full_iters, full_batch = PAPER_SCHEDULE[dataset]
        basis = "paper"
    else:   # the recipe's own length: the iterations done fall short of it
        full_iters, full_batch, basis = _int_or_none(recipe.get("iters")), batch or 1, "recipe"
    why = record.reduced_reasons(
        data="synthetic" if "synthetic" in (recipe.get("data"), dataset) else dataset,
        iters=iters, batch_size=batch, full_iters=full_iters, full_batch=full_batch,
        subset=_int_or_none(recipe.get("subset")) or None, basis=basis)
    return bool(why), "; ".join(why)


def _shortcut(spec: dict) -> Any:
    """The shortcut option a run's config.json records (read from the checked network); older
    records lacking it fall back to a spec parameter named ``shortcut``."""
    if spec.get("shortcut") is not None:
        return spec["shortcut"]
    params = spec.get("params")
    return params.get("shortcut") if isinstance(params, dict) else None


def _load_one(path: Path, root: Path) -> tuple[dict, dict, dict, dict]:
    cfg = _read_json(path / "config.json", "config.json")
    if not isinstance(cfg, dict):
        raise _Bad("config.json is not a JSON object")
    summary_path = path / "summary.json"
    if not summary_path.exists():
        try:
            n = len(record.read_metrics(path))
        except (OSError, ValueError):
            n = 0
        extra = f"; metrics.jsonl has {n} evaluations" if n else ""
        raise _Bad(f"no summary.json (not started, or killed before its first summary{extra})")
    summary = _read_json(summary_path, "summary.json")
    if not isinstance(summary, dict):
        raise _Bad("summary.json is not a JSON object")
    status = summary.get("status")
    recipe = cfg.get("recipe") if isinstance(cfg.get("recipe"), dict) else {}
    if status == "running":
        done = summary.get("iters_done")
        full = recipe.get("iters")
        prog = f" ({done} of {full} iterations done)" if done is not None and full else ""
        raise _Bad(f"still running{prog}, or killed without a final summary")

    is_ensemble = cfg.get("kind") == "ensemble"
    sweep = cfg.get("sweep") if isinstance(cfg.get("sweep"), dict) else None
    kind = "ensemble" if is_ensemble else ("trial" if sweep else "run")
    spec = cfg.get("spec") if isinstance(cfg.get("spec"), dict) else {}
    if not is_ensemble and not spec:
        raise _Bad("config.json has no 'spec' entry")

    dataset = recipe.get("data")
    test_mode = recipe.get("test_mode")
    members = cfg.get("members") or []
    if is_ensemble and (dataset is None or test_mode is None):
        for m in members:
            mp = _resolve_member(str(m), path, root)
            if mp is None:
                continue
            mcfg = record.read_json(mp / record.CONFIG)
            if not isinstance(mcfg, dict):
                continue
            mrec = mcfg.get("recipe") or {}
            dataset = dataset or mrec.get("data")
            test_mode = test_mode or mrec.get("test_mode")
            if dataset and test_mode:
                break

    final = summary.get("final") if isinstance(summary.get("final"), dict) else {}
    best = summary.get("best") if isinstance(summary.get("best"), dict) else {}
    iters = _int_or_none(summary.get("iters_done"))
    if iters is None:
        iters = _int_or_none(final.get("iter"))
    reduced, why = _reduced(cfg, summary, dataset, iters) if not is_ensemble else (
        bool(summary.get("reduced")), str(summary.get("reduced_why") or ""))

    row = {
        "kind": kind,
        "name": spec.get("name") or ("ensemble" if is_ensemble else None),
        "dataset": dataset,
        "recipe": recipe.get("name"),
        "depth": _int_or_none(spec.get("depth")),
        "shortcut": normalize_shortcut(_shortcut(spec)),
        "block": spec.get("block"),
        "test_mode": test_mode,
        "params": _int_or_none(summary.get("params")),
        "flops": _int_or_none(summary.get("flops")),
        "seed": _int_or_none(recipe.get("seed")),
        "status": status or "unknown",
        "iters": iters,
        "iters_full": _int_or_none(recipe.get("iters")),
        "batch_size": _int_or_none(recipe.get("batch_size")),
        "test_err": _num(final.get("test_err")),
        "top5_err": _num(final.get("test_top5_err")),
        "best_test_err": _num(best.get("test_err")),
        "val_err": _num(final.get("val_err")),
        "wall_s": _num(summary.get("wall_s")),
        "hardware": hardware_text(summary.get("segments")),
        "reduced": bool(reduced),
        "reduced_why": why or None,
        "study": sweep.get("study") if sweep else None,
        "trial": _int_or_none(sweep.get("trial")) if sweep else None,
        "members": len(members) if is_ensemble else None,
    }
    spec_params = spec.get("params") if isinstance(spec.get("params"), dict) else {}
    sweep_params = (sweep.get("params") if sweep and isinstance(sweep.get("params"), dict) else {})
    return row, cfg, spec_params, sweep_params


def load_runs(root: Path | str) -> RunSet:
    """Read every run record under root. Raises ReportError when there is nothing usable."""
    root = Path(root)
    if not root.exists():
        raise ReportError(f"{root}: no such folder")
    if not root.is_dir():
        raise ReportError(f"{root}: not a folder (give the folder that holds the run records)")
    dirs = find_run_dirs(root)
    if not dirs:
        raise ReportError(f"{root}: no run records found (a run record is a folder with a "
                          "config.json, written by `resdsl train`, `resdsl sweep` or "
                          "`resdsl ensemble`)")
    rows, bad, configs, sparams, wparams = [], [], {}, {}, {}
    for d in dirs:
        rel = d.relative_to(root).as_posix() or "."
        try:
            row, cfg, sp, wp = _load_one(d, root)
        except _Bad as e:
            bad.append(BadRun(rel, str(e)))
            continue
        row["run_dir"] = rel
        rows.append(row)
        configs[rel] = cfg
        sparams[rel] = sp
        wparams[rel] = wp
    if not rows:
        lines = "\n".join(f"  {b.run_dir}: {b.reason}" for b in bad)
        raise ReportError(f"{root}: {len(bad)} run record(s) found, none usable:\n{lines}")
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for col in ("depth", "params", "flops", "seed", "iters", "iters_full", "batch_size",
                "trial", "members"):
        frame[col] = frame[col].astype("Int64")
    frame["reduced"] = frame["reduced"].astype(bool)
    frame = _sorted(frame)
    return RunSet(root=root, runs=frame, bad=bad, configs=configs, spec_params=sparams,
                  sweep_params=wparams)


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    order = {"run": 0, "ensemble": 1, "trial": 2}
    key = pd.DataFrame({
        "k": frame["kind"].map(order).fillna(3),
        "d": frame["dataset"].fillna("~").astype(str),
        "s": frame["study"].fillna("").astype(str),
        "r": (frame["shortcut"] != "none").astype(int),
        "depth": frame["depth"].fillna(10**9).astype("int64"),
        "sc": frame["shortcut"].fillna("~").astype(str),
        "t": frame["trial"].fillna(-1).astype("int64"),
        "seed": frame["seed"].fillna(-1).astype("int64"),
        "dir": frame["run_dir"].astype(str),
    })
    idx = key.sort_values(list(key.columns), kind="stable").index
    return frame.loc[idx].reset_index(drop=True)


def load_metrics(path: Path) -> list[dict]:
    """The evaluations of a run (metrics.jsonl); [] when absent. A torn last line is dropped."""
    return record.read_metrics(Path(path))


def load_responses(path: Path) -> list[dict] | None:
    """The layer responses of a run (responses.json) or None when absent or unreadable."""
    data = record.read_json(Path(path) / record.RESPONSES)
    layers = data.get("layers") if isinstance(data, dict) else None
    if not isinstance(layers, list):
        return None
    return [x for x in layers if isinstance(x, dict) and "std" in x]


# ---------------------------------------------------------------- filters

FILTER_ALIASES = {"data": "dataset", "spec": "name", "test": "test_mode", "option": "shortcut"}


def _matches(value: Any, wanted: str) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return wanted.lower() in ("null", "")
    try:
        if pd.isna(value):
            return wanted.lower() in ("null", "")
    except (TypeError, ValueError):
        pass
    # the wanted text is read by the type of the recorded value, by the one rule of the CLI
    try:
        if isinstance(value, (bool, np.bool_)):
            return parse_value(wanted, bool) == bool(value)
        if isinstance(value, (int, float, np.integer, np.floating)):
            return parse_value(wanted, float) == float(value)
        return parse_value(wanted, str).lower() == str(value).lower()
    except ValueError:
        return False


def _lookup(rs: RunSet, run_dir: str, row: pd.Series, key: str) -> tuple[bool, Any]:
    """(found, value) of a filter key for one run."""
    if key in rs.runs.columns:
        return True, row[key]
    if "." in key:  # a path into config.json, e.g. recipe.lr or spec.params.n
        d: Any = rs.configs.get(run_dir, {})
        for part in key.split("."):
            if not isinstance(d, dict) or part not in d:
                return False, None
            d = d[part]
        return True, d
    if key in rs.spec_params.get(run_dir, {}):
        return True, rs.spec_params[run_dir][key]
    if key in rs.sweep_params.get(run_dir, {}):
        return True, rs.sweep_params[run_dir][key]
    return False, None


def parse_filter(text: str) -> tuple[str, bool, list[str]]:
    """'key=v1,v2' or 'key!=v' -> (key, negate, values)."""
    if "!=" in text:
        key, _, value = text.partition("!=")
        neg = True
    elif "=" in text:
        key, _, value = text.partition("=")
        neg = False
    else:
        raise ReportError(f"--filter {text!r}: expected key=value (e.g. dataset=cifar10, depth=20,56)")
    key = key.strip()
    key = FILTER_ALIASES.get(key, key)
    values = [v.strip() for v in value.split(",")]
    if not key:
        raise ReportError(f"--filter {text!r}: the key is empty")
    return key, neg, values


def apply_filters(rs: RunSet, filters: list[str] | None) -> RunSet:
    """Keep the runs that satisfy every filter (key=value, value lists 'a,b' mean any of them,
    key!=value excludes). Keys: runs-frame columns, dotted config paths (recipe.lr,
    spec.params.n), or bare spec / sweep parameter names."""
    if not filters:
        return rs
    frame = rs.runs
    keep = pd.Series(True, index=frame.index)
    for text in filters:
        key, neg, values = parse_filter(text)
        seen_key = False
        hits = []
        for i, row in frame.iterrows():
            found, value = _lookup(rs, row["run_dir"], row, key)
            seen_key |= found
            ok = found and any(_matches(value, v) for v in values)
            hits.append(ok != neg if found else neg)
        if not seen_key:
            known = list(frame.columns) + sorted({k for d in rs.spec_params.values() for k in d}
                                                 | {k for d in rs.sweep_params.values() for k in d})
            hint = did_you_mean(key, known)
            raise ReportError(f"--filter {text!r}: no run has a field {key!r}"
                              + (f"; did you mean {hint!r}?" if hint else
                                 f"; known fields: {', '.join(k for k in known if k != 'run_dir')}"))
        keep &= pd.Series(hits, index=frame.index)
    kept = frame[keep].reset_index(drop=True)
    if kept.empty:
        present = []
        for col in ("dataset", "depth", "shortcut", "kind", "status"):
            vals = sorted({str(v) for v in frame[col].dropna()})
            if vals:
                present.append(f"{col}: {', '.join(vals)}")
        raise ReportError("no run matches " + " ".join(f"--filter {f}" for f in filters)
                          + f" (of {len(frame)} runs; present: " + "; ".join(present) + ")")
    dirs = set(kept["run_dir"])
    return RunSet(root=rs.root, runs=kept, bad=rs.bad,
                  configs={k: v for k, v in rs.configs.items() if k in dirs},
                  spec_params={k: v for k, v in rs.spec_params.items() if k in dirs},
                  sweep_params={k: v for k, v in rs.sweep_params.items() if k in dirs})
