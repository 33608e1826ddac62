"""`resdsl ensemble`: the average of several runs' softmax outputs on their common test set
(the paper's Table 5 entry is an ensemble), recorded like a run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from resdsl.errors import RunError
from resdsl.io import atomic_write_json, atomic_write_text


def _member_predictions(run_dir: Path, device: str) -> tuple[dict, dict]:
    """(config, {"probs", "targets", "view", "data"}) of a finished run; recomputed from the
    checkpoint when predictions.pt is missing."""
    from resdsl.train.runner import read_run_config

    cfg = read_run_config(run_dir)
    if cfg.get("kind") == "ensemble":
        raise RunError(f"{run_dir} is itself an ensemble; give the member runs")
    pred = run_dir / "predictions.pt"
    if pred.exists():
        try:
            p = torch.load(pred, map_location="cpu", weights_only=True)
        except Exception as e:
            raise RunError(f"{pred}: cannot read it ({e})") from None
        return cfg, p
    return cfg, _recompute(run_dir, device)


def _recompute(run_dir: Path, device: str) -> dict:
    from resdsl.compiler import compile_network
    from resdsl.data import multiscale_sizes
    from resdsl.train.config import TrainConfig, resolve
    from resdsl.train.data import open_run_data
    from resdsl.train.devices import memory_format, pick_device
    from resdsl.train.evaluate import evaluate
    from resdsl.train.runner import load_request

    ck_path = run_dir / "checkpoint.pt"
    if not ck_path.exists():
        raise RunError(f"{run_dir}: no predictions.pt and no checkpoint.pt to evaluate")
    req: TrainConfig = load_request(run_dir)
    req.device = device
    r = resolve(req)
    dev = pick_device(device)
    model = compile_network(r.net)
    model = model.to(dev, memory_format=memory_format(dev, model))
    ck = torch.load(ck_path, map_location="cpu", weights_only=True)
    model.load_state_dict(ck["model"])
    data = open_run_data(r, dev)
    if r.data == "imagenet" and r.test_mode != "center":
        h = r.net.input_shape[1]
        res = evaluate(model, data.final_test(r.test_mode, r.workers), dev, data.num_classes,
                       r.amp, keep_probs=True, view=r.test_mode,
                       scales=multiscale_sizes(h))
    else:
        res = evaluate(model, data.test, dev, data.num_classes, r.amp, keep_probs=True,
                       view="single" if r.data != "imagenet" else "center")
    return {"probs": res.probs, "targets": res.targets, "view": r.test_mode, "data": r.data,
            "n": res.n}


def ensemble(run_dirs: list[Path], out_dir: Path, device: str = "auto") -> dict:
    """Average the members' softmax outputs; write config.json (kind "ensemble"), metrics.jsonl
    (one row) and summary.json into ``out_dir``; return the summary."""
    from resdsl.data import topk_correct
    from resdsl.train.runner import _check_fresh, _now, _versions

    t0 = time.perf_counter()
    if len(run_dirs) < 2:
        raise RunError("an ensemble needs at least two run records")
    out_dir = Path(out_dir)
    _check_fresh(out_dir)
    members = []
    for d in run_dirs:
        cfg, p = _member_predictions(Path(d), device)
        members.append((Path(d), cfg, p))
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
        try:
            s = json.loads((d / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        if s.get("reduced"):
            reduced.append(f"{d.name}: {s.get('reduced_why')}")
    atomic_write_json(out_dir / "config.json", {
        **_versions(), "kind": "ensemble", "device": device,
        "members": [str(d) for d, _, _ in members],
        "member_specs": [(cfg.get("spec") or {}).get("name") for _, cfg, _ in members],
        "recipe": {"name": recipes[0].get("name"), "data": ref["data"], "test_mode": ref["view"]},
        "started": _now()})
    atomic_write_text(out_dir / "metrics.jsonl", json.dumps(row) + "\n")
    summary = {
        "status": "completed", "reason": None, "iters_done": 0, "iters": 0, "final": row,
        "best": {"test_err": err, "val_err": None, "iter": 0},
        "params": None, "flops": None, "wall_s": round(time.perf_counter() - t0, 3),
        "reduced": bool(reduced), "reduced_why": "; ".join(reduced) or None,
        "member_errs": member_errs, "members": len(members), "test_images": n,
        "updated": _now()}
    atomic_write_json(out_dir / "summary.json", summary)
    return summary
