"""`resdsl build`: check a spec, show it in the shape of the paper's Table 1, count params and FLOPs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer

from .cli_common import console, err_console, parse_spec_overrides
from .errors import ResdslError
from .text import format_count

# The spec layer (lark) is imported when the command runs, not for `resdsl --help`; torch only
# for --onnx.
if TYPE_CHECKING:
    from rich.table import Table

    from .spec.analysis import NetSummary


def render_table1(summary: NetSummary, per_stage: bool) -> Table:
    """The paper's Table 1 layout: layer name, output size, [block structure] x count."""
    from rich.table import Table

    table = Table(title=f"{summary.name} ({summary.depth}-layer)", show_lines=True)
    table.add_column("layer name", style="bold")
    table.add_column("output size", justify="right")
    table.add_column("structure")
    if per_stage:
        table.add_column("params", justify="right")
        table.add_column("mult-adds", justify="right")
    for row in summary.rows:
        lines = row.structure or ["-"]
        if row.count > 1 or row.block:
            structure = "[" + "\n ".join(lines) + f"]  x {row.count}"
        else:
            structure = "\n".join(lines)
        cells = [row.name, row.output, structure]
        if per_stage:
            cells += [f"{row.params:,}", format_count(row.flops, decimals=3)]
        table.add_row(*cells)
    return table


def build_command(
    ctx: typer.Context,
    spec: str = typer.Argument(..., metavar="SPEC", help="A .net file, or the name of a shipped spec (resnet50, cifar_6n2)."),
    flops: bool = typer.Option(False, "--flops", help="Also show params and multiply-adds per stage."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (params, flops, stages) instead."),
    input: Optional[str] = typer.Option(None, "--input", metavar="CxHxW", help="Input shape, e.g. 3x320x320."),
    onnx: Optional[Path] = typer.Option(None, "--onnx", metavar="PATH", help="Export the network to ONNX."),
    set_: Optional[list[str]] = typer.Option(None, "--set", metavar="NAME=VALUE", help="Set a spec parameter."),
    force: bool = typer.Option(False, "--force", help="Let --onnx replace a file that is not an ONNX model."),
    seed: Optional[int] = typer.Option(None, "--seed", min=0,
                                       help="Seed the initialization of the --onnx export: the same seed "
                                            "gives identical weights. Default: unseeded, different every time."),
):
    """Check a spec and print its architecture (Table 1 layout), parameters and multiply-adds.

    Spec parameters are options too: --NAME VALUE.

    Examples:

    \b
      resdsl build specs/resnet50.net --flops
      resdsl build specs/cifar_6n2.net --n 18 --json
      resdsl build specs/resnet50.net --stride_at 3x3 --input 3x320x320
      resdsl build specs/cifar_6n2.net --shortcut none --onnx plain20.onnx --seed 0
    """
    from .spec.analysis import estimate_memory, summarize
    from .machine import available_host_memory, memory_problem
    from .onnx_export import check_export_memory, export_onnx, require_exporter
    from .outputs import ONNX_MAGIC, check_output_file
    from .spec import load_network, parse_input_shape

    if seed is not None and onnx is None:
        raise ResdslError("--seed seeds the initialization of the exported network; give it with --onnx PATH")
    overrides = parse_spec_overrides(ctx.args, set_)
    shape = parse_input_shape(input) if input else None
    net = load_network(spec, overrides, shape)
    if onnx is not None:
        onnx = check_output_file("--onnx", onnx, inputs=[Path(p) for p in net.sources], kind="an ONNX model",
                                 magic=ONNX_MAGIC, force=force)
        require_exporter()
    summary = summarize(net)
    memory = estimate_memory(net)
    available = available_host_memory()
    if onnx is not None:
        check_export_memory(net, memory, available)
    else:
        # build itself allocates nothing: say so, but do not fail
        problem = memory_problem("a training step at batch 1", memory.training_step(1), available, memory.params)
        if problem:
            err_console.print(f"warning: {problem}: it cannot be trained (or exported) on this machine",
                              style="yellow", highlight=False, markup=False, soft_wrap=True)
    if onnx is not None:
        import torch

        from .spec.compiler import compile_network

        if seed is not None:
            torch.manual_seed(seed)       # then build, as the trainer does
        export_onnx(compile_network(net), net.input_shape, onnx)
    if as_json:
        out = summary.to_json()
        out["params_values"] = net.params
        print(json.dumps(out, indent=2))
        return
    console.print(render_table1(summary, flops))
    console.print(f"params [bold]{summary.params:,}[/] ({summary.params / 1e6:.2f}M)   "
                  f"multiply-adds [bold]{summary.flops:,}[/] ({format_count(summary.flops, decimals=3)})   "
                  f"depth {summary.depth}   input {'x'.join(map(str, net.input_shape))}   "
                  f"classes {net.num_classes}")
    if net.params:
        console.print("parameters: " + ", ".join(f"{k}={v!r}" for k, v in net.params.items()), style="dim")
    if onnx is not None:
        console.print(f"wrote {onnx}")
