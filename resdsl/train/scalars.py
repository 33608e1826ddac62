"""TensorBoard scalars of a run (``--tensorboard DIR``): every metrics.jsonl row becomes scalars
at its iteration, written through ``torch.utils.tensorboard``. The ``tensorboard`` package is
optional (``pip install tensorboard``, or the extra ``resdsl[tensorboard]``); asking for
scalars without it is a message before any work, like an unwritable folder."""

from __future__ import annotations

import math
from pathlib import Path

from resdsl.errors import RunError
from resdsl.outputs import check_output_dir

OPTION = "--tensorboard"
# metrics.jsonl key -> TensorBoard tag (TensorBoard groups tags by the part before the slash)
TAGS = {
    "train_loss": "train/loss", "train_err": "train/err",
    "val_err": "val/err", "val_top5_err": "val/top5_err",
    "test_err": "test/err", "test_top5_err": "test/top5_err", "test_loss": "test/loss",
    "lr": "lr", "images_per_s": "images_per_s",
}


def check_scalars_dir(folder: str | Path) -> str:
    """``folder`` as an absolute path (recorded in the run's request, so a resumed run writes
    there from any working folder) once TensorBoard can be imported and the folder can be
    written; a RunError or OutputError saying why not otherwise."""
    try:
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401  (needs tensorboard)
    except Exception as e:  # missing, or an install that breaks on import (protobuf versions)
        raise RunError(f"{OPTION} needs the tensorboard package, which cannot be imported "
                       f"({type(e).__name__}: {e}); install it with: pip install tensorboard "
                       "(or, in the checkout, resdsl's extra: pip install '.[tensorboard]')") from None
    return str(check_output_dir(OPTION, folder).resolve())


class ScalarWriter:
    """One run's event files in ``folder``. ``resumed_at``: the iteration a resumed run goes on
    from; TensorBoard hides the scalars an earlier segment wrote after it, which the resumed run
    writes again (as metrics.jsonl drops those rows)."""

    def __init__(self, folder: str | Path, resumed_at: int | None = None):
        from torch.utils.tensorboard import SummaryWriter

        purge = resumed_at + 1 if resumed_at else None
        self.writer = SummaryWriter(str(folder), purge_step=purge)

    def write(self, row: dict) -> None:
        for key, tag in TAGS.items():
            value = row.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(tag, value, row["iter"])
        self.writer.flush()       # visible to a running TensorBoard at once

    def close(self) -> None:
        self.writer.close()
