"""Command-line options shared by `resdsl train` and `resdsl sweep`: one definition, one help text."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Optional

import typer

from resdsl.errors import RunError

Recipe = Annotated[str, typer.Option("--recipe", help="The paper's recipe: cifar (sec. 4.2) or imagenet (sec. 3.4).")]
Data = Annotated[Optional[str], typer.Option("--data", help="cifar10, imagenet or synthetic (default: the recipe's).")]
DataDir = Annotated[Optional[str], typer.Option(
    "--data-dir", help="Data folder (CIFAR-10 batches, or ImageNet train/ and val/).")]
Iters = Annotated[Optional[int], typer.Option("--iters", help="Training iterations (cifar: 64000).")]
Epochs = Annotated[Optional[float], typer.Option("--epochs", help="Training length in epochs instead of --iters.")]
BatchSize = Annotated[Optional[int], typer.Option("--batch-size", help="Mini-batch size (cifar 128, imagenet 256).")]
Lr = Annotated[Optional[float], typer.Option("--lr", help="Learning rate (0.1).")]
Milestones = Annotated[Optional[str], typer.Option(
    "--milestones", metavar="I,J", help="Iterations where lr is divided by 10, e.g. 32000,48000.")]
Momentum = Annotated[Optional[float], typer.Option("--momentum", help="SGD momentum (0.9).")]
WeightDecay = Annotated[Optional[float], typer.Option("--weight-decay", help="Weight decay (1e-4).")]
Warmup = Annotated[Optional[str], typer.Option(
    "--warmup", help="auto (the 110-layer rule), off, or a number of iterations at lr/10.")]
Device = Annotated[str, typer.Option("--device", help="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps.")]
Amp = Annotated[Optional[str], typer.Option("--amp", help="Mixed precision: bf16 (CPU/CUDA) or fp16 (CUDA).")]
Compile = Annotated[bool, typer.Option("--compile", help="Compile the model with torch.compile.")]
EvalEvery = Annotated[Optional[int], typer.Option(
    "--eval-every", help="Evaluate (and checkpoint) every N iterations; a sweep's pruner steps.")]
TestMode = Annotated[Optional[str], typer.Option(
    "--test-mode", help="single (CIFAR); center, 10crop or multiscale (ImageNet).")]
Subset = Annotated[Optional[int], typer.Option("--subset", help="Train on N training images only.")]
Input = Annotated[Optional[str], typer.Option("--input", metavar="CxHxW", help="Input shape, e.g. 3x32x32.")]
SetParam = Annotated[Optional[list[str]], typer.Option("--set", metavar="NAME=VALUE", help="Set a spec parameter.")]
OutDir = Optional[Path]


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
