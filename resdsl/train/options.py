"""The training options: one list of fields, the single source of the ``resdsl train`` and
``resdsl sweep`` options, of ``TrainConfig`` (train/config.py), and of what enters the run
record's ``recipe`` and the content hash. A new option is one more ``Field`` here (plus its
check in ``resolve`` when it needs one).
"""

from __future__ import annotations

import functools
import inspect
import re
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Optional

import typer

from resdsl.cli_common import choices_metavar, complete_choices
from resdsl.data.names import DATASETS, TEST_MODES
from resdsl.errors import RunError
from resdsl.train.recipes import AMP_MODES, DEVICES, RECIPES


def parse_milestones(text: str | None) -> list[int] | None:
    """'32000,48000' -> [32000, 48000]; 'none' -> [] (a constant lr); None -> the recipe's."""
    if text is None:
        return None
    text = text.strip()
    if text.lower() in ("", "none"):
        return []
    try:
        return [int(float(v)) for v in re.split(r"[,\s]+", text) if v]
    except ValueError:
        raise RunError(f"--milestones {text!r}: expected iterations separated by commas, "
                       "e.g. 32000,48000") from None


def _parse_input(text: str | None) -> tuple | None:
    from resdsl.spec import parse_input_shape

    return parse_input_shape(text) if text else None


@dataclass(frozen=True)
class Field:
    """One training option.

    ``type`` is the value's type in ``TrainConfig`` (None allowed where ``default`` is None);
    ``cli_type`` the type the command line gives, turned into the value by ``parse``.
    ``record``: the key of the field in config.json's ``recipe`` (None: not recorded there);
    ``hashed``: whether the value decides the result of a run (content hash).
    ``aliases``: older spellings of the flag, accepted by ``resdsl train``.
    ``resolved_type``: the type of the checked value in ``ResolvedConfig`` where it differs.
    ``choices``: the names the value is one of, for the help and shell completion (checked in
    ``resolve``); ``metavar`` then defaults to them.
    """

    name: str
    type: Any
    default: Any
    flag: str
    help: str
    metavar: str | None = None
    cli_type: Any = None
    parse: Callable[[Any], Any] | None = None
    record: str | None = None
    hashed: bool = False
    aliases: tuple[str, ...] = ()
    resolved_type: Any = None
    choices: tuple[str, ...] = ()

    def annotation(self) -> Any:
        t = self.cli_type or self.type
        return Optional[t] if self.default is None else t


FIELDS: tuple[Field, ...] = (
    Field("recipe", str, "cifar", "--recipe",
          "The paper's recipe: cifar (sec. 4.2) or imagenet (sec. 3.4).", record="name",
          hashed=True, choices=tuple(RECIPES)),
    Field("data", str, None, "--data", "Data set (default: the recipe's).",
          record="data", hashed=True, choices=DATASETS),
    Field("data_dir", str, None, "--data-dir",
          "Data folder (CIFAR-10 batches, or ImageNet train/ and val/).", metavar="DIR"),
    Field("iters", int, None, "--iters", "Training iterations (cifar: 64000).", metavar="N",
          record="iters", hashed=True),
    Field("epochs", float, None, "--epochs", "Training length in epochs instead of --iters.",
          metavar="N", record="epochs", hashed=True),
    Field("batch_size", int, None, "--batch-size", "Mini-batch size (cifar 128, imagenet 256).",
          metavar="N", record="batch_size", hashed=True),
    Field("lr", float, None, "--lr", "Learning rate (0.1).", metavar="RATE", record="lr",
          hashed=True),
    Field("milestones", list, None, "--milestones",
          "Iterations where lr is divided by 10, e.g. 32000,48000.", metavar="I,J", cli_type=str,
          parse=parse_milestones, record="milestones", hashed=True),
    Field("momentum", float, None, "--momentum", "SGD momentum (0.9).", metavar="M",
          record="momentum", hashed=True),
    Field("weight_decay", float, None, "--weight-decay", "Weight decay (1e-4).", metavar="WD",
          record="weight_decay", hashed=True),
    Field("warmup", str, None, "--warmup",
          "auto (the 110-layer rule), off, or N iterations at lr/10.", metavar="[auto|off|N]",
          record="warmup", hashed=True, resolved_type=dict | None),
    Field("val_split", int, None, "--val-split",
          "Hold out N training images for validation (5000: the 45k/5k split). A sweep whose "
          "objective is the validation error holds out 5000 CIFAR-10 images, or a tenth of "
          "synthetic data, unless told.", metavar="N", record="val_split", hashed=True),
    Field("seed", int, 0, "--seed", "Random seed (initialization and data order).",
          metavar="N", record="seed", hashed=True),
    Field("device", str, "auto", "--device",
          "auto: cuda, then mps, then cpu; cuda:N for GPU N.", choices=DEVICES),
    Field("amp", str, None, "--amp", "Mixed precision: bf16 (CPU/CUDA) or fp16 (CUDA).",
          record="amp", hashed=True, choices=AMP_MODES),
    Field("compile", bool, False, "--compile", "Compile the model with torch.compile.",
          record="compile"),
    Field("eval_every", int, None, "--eval-every",
          "Evaluate (and checkpoint) every N iterations; a sweep's pruner steps.", metavar="N",
          record="eval_every"),
    Field("test_mode", str, None, "--test-mode",
          "Final test view: single for CIFAR; center, 10crop or multiscale for ImageNet "
          "(default: the recipe's).", record="test_mode", hashed=True, choices=TEST_MODES),
    Field("subset", int, None, "--subset", "Train on N training images only.", metavar="N",
          record="subset", hashed=True),
    Field("workers", int, None, "--loader-workers",
          "Image decoding processes per run (ImageNet).", metavar="N", aliases=("--workers",)),
    Field("input_shape", tuple, None, "--input", "Input shape, e.g. 3x32x32.", metavar="CxHxW",
          cli_type=str, parse=_parse_input),
    Field("sync_bn", bool, False, "--sync-bn",
          "Synchronize BN statistics across processes (torchrun).", record="sync_bn", hashed=True),
    # where the scalars go changes no result: neither recorded in the recipe nor hashed
    Field("tensorboard", str, None, "--tensorboard",
          "Write every evaluation's metrics as TensorBoard scalars into DIR (a sweep: one "
          "DIR/<run folder> per run). Needs the tensorboard package.", metavar="DIR"),
)
PREFIX = "train__"   # of the command parameters with_train_options adds

SetParam = Annotated[Optional[list[str]], typer.Option(
    "--set", metavar="NAME=VALUE", help="Set a spec parameter (as --NAME VALUE does).")]

# --device of the commands that only evaluate (ensemble, eval); train and sweep take FIELDS' one
DeviceOption = Annotated[str, typer.Option(
    "--device", metavar=choices_metavar(DEVICES), autocompletion=complete_choices(DEVICES),
    help="auto: cuda, then mps, then cpu; cuda:N for GPU N.")]


def with_train_options(*, exclude: tuple[str, ...] = (), aliases: bool = True):
    """Give a typer command every training option (but ``exclude``) after its own parameters;
    the command receives their values, parsed, as one dict ``train_options`` (field -> value).
    ``aliases``: accept the fields' older flag spellings too (not where they clash)."""
    chosen = [f for f in FIELDS if f.name not in exclude]

    def decorate(command):
        sig = inspect.signature(command, eval_str=True)
        own = [p for p in sig.parameters.values() if p.name != "train_options"]
        added = []
        for f in chosen:
            decls = (f.flag, *(f.aliases if aliases else ()))
            option = typer.Option(
                f.default, *decls, help=f.help,
                metavar=f.metavar or (choices_metavar(f.choices) if f.choices else None),
                autocompletion=complete_choices(f.choices) if f.choices else None)
            # a prefixed name: the command's own parameters may be named like a field (sweep's
            # --workers); users only ever see the flags
            added.append(inspect.Parameter(PREFIX + f.name, inspect.Parameter.KEYWORD_ONLY,
                                           default=option, annotation=f.annotation()))
        # keyword-only parameters must follow the others: keep the command's own ones first
        params = ([p for p in own if p.kind != inspect.Parameter.KEYWORD_ONLY] + added
                  + [p for p in own if p.kind == inspect.Parameter.KEYWORD_ONLY])

        @functools.wraps(command)
        def wrapper(*args, **kwargs):
            values = {}
            for f in chosen:
                v = kwargs.pop(PREFIX + f.name)
                values[f.name] = f.parse(v) if f.parse is not None and v is not None else v
            return command(*args, train_options=values, **kwargs)

        wrapper.__signature__ = sig.replace(parameters=params)
        wrapper.__annotations__ = {p.name: p.annotation for p in params
                                   if p.annotation is not inspect.Parameter.empty}
        return wrapper

    return decorate

