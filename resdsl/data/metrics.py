"""Top-k error: the paper's classification metric (fractions in [0, 1])."""

from __future__ import annotations

from typing import Sequence

import torch


def topk_correct(scores: torch.Tensor, targets: torch.Tensor, ks: Sequence[int] = (1, 5)) -> list[int]:
    """How many rows of ``scores`` (B, K) have their target among the top k, for each k.

    Counts, not rates, so an evaluation can sum them over batches of unequal size. A k larger
    than K counts every row as correct.
    """
    if scores.dim() != 2 or targets.shape != (scores.shape[0],):
        raise ValueError(f"expected scores (B, K) and targets (B,), got {tuple(scores.shape)} "
                         f"and {tuple(targets.shape)}")
    kmax = min(max(ks), scores.shape[1])
    top = scores.topk(kmax, dim=1).indices                       # (B, kmax), best first
    hit = top == targets.to(top.device)[:, None]
    return [int(hit[:, :min(k, kmax)].any(dim=1).sum()) for k in ks]


def top1_error(scores: torch.Tensor, targets: torch.Tensor) -> float:
    """Fraction of rows whose highest score is not the target."""
    return 1.0 - topk_correct(scores, targets, (1,))[0] / max(len(targets), 1)


def top5_error(scores: torch.Tensor, targets: torch.Tensor) -> float | None:
    """Fraction of rows whose target is not among the 5 highest scores; None when K <= 5,
    where it is meaningless (the run record stores ``test_top5_err: null`` then)."""
    if scores.shape[1] <= 5:
        return None
    return 1.0 - topk_correct(scores, targets, (5,))[0] / max(len(targets), 1)
