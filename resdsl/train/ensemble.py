"""`resdsl ensemble`: the average of several runs' softmax outputs on their common test set
(the paper's Table 5 entry is an ensemble), recorded like a run."""

from __future__ import annotations

import time
from pathlib import Path

import torch

from resdsl import record
from resdsl.errors import RunError

PREDICTION_KEYS = ("probs", "targets", "view", "data")


def _member_config(run_dir: Path) -> dict:
    """config.json of a member; refuses an ensemble and a folder that is no run record."""
    cfg = record.read_run_config(run_dir)
    if cfg.get("kind") == "ensemble":
        raise RunError(f"{run_dir} is itself an ensemble; give the member runs")
    return cfg


def _check_completed(run_dirs: list[Path]) -> None:
    """Only completed runs make an ensemble: list every member that is not, with its status."""
    unfinished = []
    for d in run_dirs:
        s = record.read_summary(d)
        status = s.get("status") if s is not None else None
        if status != record.COMPLETED:
            unfinished.append(f"  {d}: {status or 'no readable summary.json'}")
    if unfinished:
        raise RunError("an ensemble takes completed runs only; these are not:\n"
                       + "\n".join(unfinished))


def _member_predictions(run_dir: Path, device: str) -> dict:
    """{"probs", "targets", "view", "data"} of a finished run; recomputed from its trained
    weights when predictions.pt is missing."""
    pred = run_dir / record.PREDICTIONS
    if pred.exists():
        p = record.load_torch_file(pred, "predictions")
        if not isinstance(p, dict) or any(k not in p for k in PREDICTION_KEYS) \
                or not isinstance(p["probs"], torch.Tensor) or not isinstance(p["targets"], torch.Tensor):
            raise RunError(f"{pred}: not the predictions of a run (expected "
                           f"{', '.join(PREDICTION_KEYS)})")
        return p
    return _recompute(run_dir, device)


def _recompute(run_dir: Path, device: str) -> dict:
    from resdsl.train.data import open_eval_data
    from resdsl.train.evaluate import evaluate_final_view
    from resdsl.train.trained import open_run

    run = open_run(run_dir, device)
    r = run.config
    res = evaluate_final_view(run.model, open_eval_data(r, run_dir, run.device), r, run.device)
    return {"probs": res.probs, "targets": res.targets, "view": r.test_mode, "data": r.data,
            "n": res.n}


def ensemble(run_dirs: list[Path], out_dir: Path, device: str = "auto") -> dict:
    """Average the members' softmax outputs; write config.json (kind "ensemble"), metrics.jsonl
    (one row) and summary.json into ``out_dir``; return the summary."""
    from resdsl.data import topk_correct

    t0 = time.perf_counter()
    if len(run_dirs) < 2:
        raise RunError("an ensemble needs at least two run records")
    out_dir = Path(out_dir)
    record.check_fresh(out_dir)
    run_dirs = [Path(d) for d in run_dirs]
    configs = [_member_config(d) for d in run_dirs]
    _check_completed(run_dirs)
    members = [(d, cfg, _member_predictions(d, device)) for d, cfg in zip(run_dirs, configs)]
    ref_dir, ref_cfg, ref = members[0]
    for d, cfg, p in members[1:]:
        same = (p["data"] == ref["data"] and p["view"] == ref["view"]
                and p["targets"].shape == ref["targets"].shape
                and bool(torch.equal(p["targets"], ref["targets"]))
                and p["probs"].shape[1] == ref["probs"].shape[1])
        if not same:
            raise RunError(f"{d} and {ref_dir} were not tested on the same test set (data "
                           f"{p['data']} vs {ref['data']}, view {p['view']} vs {ref['view']}, "
                           f"{len(p['targets'])} vs {len(ref['targets'])} images)")
    targets = ref["targets"]
    k = ref["probs"].shape[1]
    avg = torch.stack([p["probs"].float() for _, _, p in members]).mean(0)
    n = len(targets)

    def errs(probs):
        c1, c5 = topk_correct(probs, targets, (1, 5))
        return 1 - c1 / n, (1 - c5 / n) if k > 5 else None

    err, top5 = errs(avg)
    member_errs = [errs(p["probs"].float())[0] for _, _, p in members]
    loss = float(torch.nn.functional.nll_loss(avg.clamp_min(1e-12).log(), targets))
    row = {"iter": 0, "epoch": 0.0, "lr": None, "train_loss": None, "train_err": None,
           "val_err": None, "val_top5_err": None, "test_err": err, "test_top5_err": top5,
           "test_loss": loss, "view": ref["view"], "images_per_s": None, "elapsed_s": 0.0,
           "warmup": False}
    out_dir.mkdir(parents=True, exist_ok=True)
    recipes = [cfg.get("recipe") or {} for _, cfg, _ in members]
    reduced = []
    for (d, _, _) in members:
        s = record.read_summary(d) or {}
        if s.get("reduced"):
            reduced.append(f"{d.name}: {s.get('reduced_why')}")
    record.write_config(out_dir, {
        **record.versions(), "kind": "ensemble", "device": device,
        "members": [str(d) for d, _, _ in members],
        "member_specs": [(cfg.get("spec") or {}).get("name") for _, cfg, _ in members],
        "recipe": {"name": recipes[0].get("name"), "data": ref["data"], "test_mode": ref["view"]},
        "started": record.now()})
    record.write_metrics(out_dir, [row])
    summary = {
        "status": "completed", "reason": None, "iters_done": 0, "iters": 0, "final": row,
        "best": {"test_err": err, "val_err": None, "iter": 0},
        "params": None, "flops": None, "wall_s": round(time.perf_counter() - t0, 3),
        "reduced": bool(reduced), "reduced_why": "; ".join(reduced) or None,
        "member_errs": member_errs, "members": len(members), "test_images": n,
        "updated": record.now()}
    record.write_summary(out_dir, summary)
    return summary
