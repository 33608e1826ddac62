"""What the training loaders share: the resumable position in an endless stream of drop-last
epochs, and the seed of each random draw, mixed from (seed, epoch, batch)."""

from __future__ import annotations

import numpy as np

from resdsl.errors import DataError


def mix_seed(*parts: int) -> int:
    """A well-mixed 63-bit seed from (seed, epoch, batch, ...), so nearby runs don't correlate."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, np.uint64)[0]
               >> np.uint64(1))


class ResumableStream:
    """Position (epoch, index of the next batch) of a stream; saved and restored exactly.

    Subclasses set ``epoch``, ``index``, ``seed``, ``batch_size`` and provide ``num_samples``.
    """

    epoch: int
    index: int
    seed: int
    batch_size: int

    @property
    def num_samples(self) -> int:
        raise NotImplementedError

    def __len__(self) -> int:
        """Batches per epoch (drop-last)."""
        return self.num_samples // self.batch_size

    @property
    def position(self) -> tuple[int, int]:
        """(epoch, index of the next batch within that epoch)."""
        return self.epoch, self.index

    @property
    def epochs_done(self) -> float:
        """Fractional epochs consumed, for metrics."""
        return self.epoch + self.index / len(self)

    def state_dict(self) -> dict:
        """Plain ints only, so it loads from a checkpoint with ``weights_only=True``."""
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed,
                "batch_size": self.batch_size, "num_samples": self.num_samples}

    def load_state_dict(self, state: dict) -> None:
        for key, mine in (("seed", self.seed), ("batch_size", self.batch_size),
                          ("num_samples", self.num_samples)):
            if key in state and int(state[key]) != mine:
                raise DataError(f"cannot resume the data stream: it was saved with {key} "
                                f"{state[key]}, but this loader has {mine}; resume with the same "
                                "recipe and data")
        epoch, index = int(state["epoch"]), int(state["index"])
        if epoch < 0 or not 0 <= index < len(self):
            raise DataError(f"cannot resume the data stream at epoch {epoch}, batch {index}: "
                            f"an epoch has {len(self)} batches")
        self.epoch, self.index = epoch, index
        self._seeked()

    def _seeked(self) -> None:
        """Called after the position was set from a saved state."""
