"""The published numbers of He et al., "Deep Residual Learning for Image Recognition" (CVPR 2016).

Every number is stored as the paper prints it (percent), with the table and the row it came from,
and with the rule that decides which of our runs belong to that row (`Match`). Rows of other
people's nets (VGG, GoogLeNet, ...) are references only: no run of ours ever matches them.

Sources checked: /work/shared/paper/tables-review.txt (Tables 3 and 6) and the running text of
deep-residual-learning.txt (3.57, 4.49, 8.43†, 6.43, 7.93); the other numbers are the paper's
Tables 2, 4, 5 and 6 as published.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# The paper's training schedules (Sec. 3.4 and 4.2): iterations at the paper's mini-batch size.
# A run that saw fewer images than this is a reduced-budget run, whatever its recipe says.
PAPER_SCHEDULE: dict[str, tuple[int, int]] = {
    "cifar10": (64000, 128),
    "imagenet": (600000, 256),
}


@dataclass(frozen=True)
class Match:
    """Which runs belong to a row: equality on runs-frame columns; None means 'any'."""

    dataset: str
    test_mode: str | None  # None: any test mode (ensembles)
    kind: str = "run"
    depth: int | None = None
    shortcut: str | None = None  # "none" for plain nets, "A" / "B" / "C"
    block: str | None = None  # compared case-insensitively; None: any block

    def as_dict(self) -> dict:
        d = {"dataset": self.dataset, "kind": self.kind}
        for key in ("test_mode", "depth", "shortcut", "block"):
            value = getattr(self, key)
            if value is not None:
                d[key] = value
        return d


@dataclass(frozen=True)
class PaperRow:
    """One row of one of the paper's tables. Errors are in percent, as printed."""

    table: int
    label: str
    top1: float | None = None
    top5: float | None = None
    layers: int | None = None
    params: str | None = None  # as printed, e.g. "0.27M"
    mean: float | None = None  # Table 6 "best (mean±std)" rows
    std: float | None = None
    note: str | None = None  # e.g. "†" (reported on the test set)
    digits: int = 2  # decimals as printed (24.4 has one)
    match: Match | None = None  # None: a reference row (another paper's net)
    extra: dict = field(default_factory=dict)

    @property
    def reference(self) -> bool:
        return self.match is None


_IN10 = dict(dataset="imagenet", test_mode="10crop")
_INMS = dict(dataset="imagenet", test_mode="multiscale")
_C10 = dict(dataset="cifar10", test_mode="single")

# Table 2: top-1 error (%, 10-crop testing) on ImageNet validation. The ResNets use option A.
TABLE2: list[PaperRow] = [
    PaperRow(2, "plain-18", top1=27.94, layers=18, match=Match(**_IN10, depth=18, shortcut="none")),
    PaperRow(2, "plain-34", top1=28.54, layers=34, match=Match(**_IN10, depth=34, shortcut="none")),
    PaperRow(2, "ResNet-18", top1=27.88, layers=18, match=Match(**_IN10, depth=18, shortcut="A")),
    PaperRow(2, "ResNet-34", top1=25.03, layers=34, match=Match(**_IN10, depth=34, shortcut="A")),
]

# Table 3: error rates (%, 10-crop testing) on ImageNet validation.
TABLE3: list[PaperRow] = [
    PaperRow(3, "VGG-16", top1=28.07, top5=9.33),
    PaperRow(3, "GoogLeNet", top1=None, top5=9.15),
    PaperRow(3, "PReLU-net", top1=24.27, top5=7.38),
    PaperRow(3, "plain-34", top1=28.54, top5=10.02, layers=34,
             match=Match(**_IN10, depth=34, shortcut="none")),
    PaperRow(3, "ResNet-34 A", top1=25.03, top5=7.76, layers=34,
             match=Match(**_IN10, depth=34, shortcut="A")),
    PaperRow(3, "ResNet-34 B", top1=24.52, top5=7.46, layers=34,
             match=Match(**_IN10, depth=34, shortcut="B")),
    PaperRow(3, "ResNet-34 C", top1=24.19, top5=7.40, layers=34,
             match=Match(**_IN10, depth=34, shortcut="C")),
    PaperRow(3, "ResNet-50", top1=22.85, top5=6.71, layers=50,
             match=Match(**_IN10, depth=50, shortcut="B", block="bottleneck")),
    PaperRow(3, "ResNet-101", top1=21.75, top5=6.05, layers=101,
             match=Match(**_IN10, depth=101, shortcut="B", block="bottleneck")),
    PaperRow(3, "ResNet-152", top1=21.43, top5=5.71, layers=152,
             match=Match(**_IN10, depth=152, shortcut="B", block="bottleneck")),
]

# Table 4: single-model error rates (%) on ImageNet validation (multi-scale fully-convolutional
# testing for the ResNets); † reported on the test set.
TABLE4: list[PaperRow] = [
    PaperRow(4, "VGG (ILSVRC'14)", top1=None, top5=8.43, note="†"),
    PaperRow(4, "GoogLeNet (ILSVRC'14)", top1=None, top5=7.89),
    PaperRow(4, "VGG (v5)", top1=24.4, top5=7.1, digits=1),
    PaperRow(4, "PReLU-net", top1=21.59, top5=5.71),
    PaperRow(4, "BN-inception", top1=21.99, top5=5.81),
    PaperRow(4, "ResNet-34 B", top1=21.84, top5=5.71, layers=34,
             match=Match(**_INMS, depth=34, shortcut="B")),
    PaperRow(4, "ResNet-34 C", top1=21.53, top5=5.60, layers=34,
             match=Match(**_INMS, depth=34, shortcut="C")),
    PaperRow(4, "ResNet-50", top1=20.74, top5=5.25, layers=50,
             match=Match(**_INMS, depth=50, shortcut="B", block="bottleneck")),
    PaperRow(4, "ResNet-101", top1=19.87, top5=4.60, layers=101,
             match=Match(**_INMS, depth=101, shortcut="B", block="bottleneck")),
    PaperRow(4, "ResNet-152", top1=19.38, top5=4.49, layers=152,
             match=Match(**_INMS, depth=152, shortcut="B", block="bottleneck")),
]

# Table 5: error rates (%) of ensembles; top-5 error on the ImageNet test set (test server).
TABLE5: list[PaperRow] = [
    PaperRow(5, "VGG (ILSVRC'14)", top5=7.32),
    PaperRow(5, "GoogLeNet (ILSVRC'14)", top5=6.66),
    PaperRow(5, "VGG (v5)", top5=6.8, digits=1),
    PaperRow(5, "PReLU-net", top5=4.94),
    PaperRow(5, "BN-inception", top5=4.82),
    PaperRow(5, "ResNet (ILSVRC'15)", top5=3.57,
             match=Match(dataset="imagenet", test_mode=None, kind="ensemble")),
]

# Table 6: classification error (%) on the CIFAR-10 test set; all with data augmentation.
TABLE6: list[PaperRow] = [
    PaperRow(6, "Maxout", top1=9.38),
    PaperRow(6, "NIN", top1=8.81),
    PaperRow(6, "DSN", top1=8.22),
    PaperRow(6, "FitNet", top1=8.39, layers=19, params="2.5M"),
    PaperRow(6, "Highway", top1=7.54, mean=7.72, std=0.16, layers=19, params="2.3M"),
    PaperRow(6, "Highway", top1=8.80, layers=32, params="1.25M"),
    PaperRow(6, "ResNet", top1=8.75, layers=20, params="0.27M",
             match=Match(**_C10, depth=20, shortcut="A")),
    PaperRow(6, "ResNet", top1=7.51, layers=32, params="0.46M",
             match=Match(**_C10, depth=32, shortcut="A")),
    PaperRow(6, "ResNet", top1=7.17, layers=44, params="0.66M",
             match=Match(**_C10, depth=44, shortcut="A")),
    PaperRow(6, "ResNet", top1=6.97, layers=56, params="0.85M",
             match=Match(**_C10, depth=56, shortcut="A")),
    PaperRow(6, "ResNet", top1=6.43, mean=6.61, std=0.16, layers=110, params="1.7M",
             match=Match(**_C10, depth=110, shortcut="A")),
    PaperRow(6, "ResNet", top1=7.93, layers=1202, params="19.4M",
             match=Match(**_C10, depth=1202, shortcut="A")),
]

# Plain CIFAR nets: the paper plots them (Fig. 6, left) but prints no number in Table 6.
TABLE6_PLAIN_DEPTHS = (20, 32, 44, 56, 110)

TABLES: dict[int, list[PaperRow]] = {2: TABLE2, 3: TABLE3, 4: TABLE4, 5: TABLE5, 6: TABLE6}

CAPTIONS: dict[int, str] = {
    2: "Table 2. Top-1 error (%, 10-crop testing) on ImageNet validation. "
       "The ResNets use zero-padding shortcuts (option A).",
    3: "Table 3. Error rates (%, 10-crop testing) on ImageNet validation. "
       "ResNet-50/101/152 use option B (projections only for increasing dimensions).",
    4: "Table 4. Error rates (%) of single-model results on the ImageNet validation set "
       "(multi-scale testing; † reported on the test set).",
    5: "Table 5. Error rates (%) of ensembles. The top-5 error is on the ImageNet test set "
       "(test server).",
    6: "Table 6. Classification error (%) on the CIFAR-10 test set; "
       "\"best (mean±std)\" where several runs exist.",
}


def all_rows() -> list[PaperRow]:
    return [row for rows in TABLES.values() for row in rows]
