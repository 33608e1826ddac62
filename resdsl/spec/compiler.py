"""Checked model to torch.nn.Module. Module names follow the spec: conv3_x.b1.conv1.weight."""

from __future__ import annotations

import torch
from torch import nn

from . import ir
from .inits import zeroed_bns
from .primitives import PRIMITIVES


# Steps of a SeqModule's plan.
_LAYER, _SAVE, _ADD, _MUL, _CAT = range(5)
_JOIN_STEPS = {"add": _ADD, "mul": _MUL, "cat": _CAT}
# Modules whose output is a tensor of their own (never their input: unlike nn.Identity, or
# nn.Dropout in eval mode), so an in-place layer right after them overwrites nothing anyone reads.
_FRESH_OUTPUT = (nn.Conv2d, nn.Linear, nn.BatchNorm2d, nn.GroupNorm, nn.LayerNorm, nn.MaxPool2d, nn.AvgPool2d,
                 nn.AdaptiveAvgPool2d, nn.ReLU, nn.ReLU6, nn.SiLU, nn.GELU, nn.Sigmoid, nn.Hardswish)


class SeqModule(nn.Module):
    """x -> items(x): layers and sub-sequences in turn; a join combines x with its source (the
    sequence's input, a saved point, or x itself), through its branch when it has one."""

    def __init__(self, seq: ir.Seq):
        super().__init__()
        # The plan is a flat tuple of (step, module, source slot), so forward is one loop. Only the
        # points a join reads are kept (slot 0 is the input); joins of option "none" (plain nets)
        # are left out entirely.
        read = {item.source for item in seq.items if isinstance(item, ir.Join) and item.source is not None}
        slots = {"input": 0}
        plan = []
        # Whether x is a tensor only this sequence holds: not its input (the caller may still read
        # it) and not a kept point. An in-place layer (ReLU(inplace=True)) may only overwrite such x.
        fresh = False
        for item in seq.items:
            if isinstance(item, ir.Save):
                if item.name in read:
                    slots[item.name] = len(slots)
                    plan.append((_SAVE, None, None))
                    fresh = False
            elif isinstance(item, ir.Join):
                if item.option == "none":
                    continue
                module = SeqModule(item.branch) if item.branch is not None else None
                if module is not None:
                    self.add_module(item.branch.name, module)
                # mul's default source is x itself (None); add and cat read the input by default.
                source = None if item.source is None and item.op == "mul" else slots[item.source or "input"]
                plan.append((_JOIN_STEPS[item.op], module, source))
                fresh = True
            else:
                module = _build_layer(item) if isinstance(item, ir.Layer) else SeqModule(item)
                self.add_module(item.name, module)
                if getattr(module, "inplace", False) and not fresh:
                    module.inplace = False
                fresh = isinstance(module, _FRESH_OUTPUT)
                plan.append((_LAYER, module, None))
        self._plan = tuple(plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        points = [x]
        for step, module, source in self._plan:
            if step == _LAYER:
                x = module(x)
            elif step == _SAVE:
                points.append(x)
            else:
                y = x if source is None else points[source]
                if module is not None:
                    y = module(y)
                if step == _ADD:
                    x = x + y
                elif step == _MUL:
                    x = x * y
                else:
                    x = torch.cat((y, x), 1)
        return x


def _build_layer(layer: ir.Layer) -> nn.Module:
    entry = PRIMITIVES[layer.kind]
    module = entry.module(layer)
    if not entry.builtin:  # a registered primitive's counts are the registrant's word: check them once here
        counted, has = entry.params(layer), sum(p.numel() for p in module.parameters())
        if counted != has:
            raise ValueError(f"primitive '{layer.kind}' counts {counted} parameters for {layer.name} "
                             f"{layer.in_shape} -> {layer.out_shape}, but its module has {has}; "
                             "give register_primitive a params= function that counts them")
    return module


class SpecModule(nn.Module):
    """The compiled network: stem, the spec's stages of blocks b1..bn, head; logits of shape (N, classes)."""

    def __init__(self, net: ir.Network):
        super().__init__()
        self.spec_name = net.name
        self.input_shape = net.input_shape
        self.num_classes = net.num_classes
        self.stem = SeqModule(net.stem)
        self.stage_names = tuple(s.name for s in net.stages)
        for stage in net.stages:
            blocks = nn.Sequential()
            for b in stage.blocks:
                blocks.add_module(b.name, SeqModule(b))
            self.add_module(stage.name, blocks)
        self.head = SeqModule(net.head)
        self._responses = tuple(_response_names(net))
        init_he(self)
        if net.init.options.get("zero_last_bn"):
            modules = dict(self.named_modules())
            for name in zeroed_bns(net):
                nn.init.zeros_(modules[name].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in self.stage_names:
            x = getattr(self, name)(x)
        return self.head(x).flatten(1)

    def response_layers(self) -> list[tuple[str, nn.Module]]:
        """(name, BN module) after each 3x3 conv, in layer order: Figure 7's responses (after BN, before ReLU/add)."""
        modules = dict(self.named_modules())
        return [(name, modules[name]) for name in self._responses]


def _response_names(net: ir.Network):
    for prefix, seq in net.seqs():
        yield from _seq_responses(seq, prefix)


def _seq_responses(seq: ir.Seq, prefix: str):
    previous = None
    for item in seq.items:
        if isinstance(item, ir.Seq):
            yield from _seq_responses(item, f"{prefix}.{item.name}")
        elif isinstance(item, ir.Layer):
            if item.kind == "bn" and previous is not None and previous.kind == "conv" and previous.attrs["k"] == 3:
                yield f"{prefix}.{item.name}"
            previous = item


def init_he(module: nn.Module) -> None:
    """The paper's initialization [He et al. 2015]: convs kaiming normal (fan_out, ReLU); BN weight 1, bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def compile_network(net: ir.Network) -> SpecModule:
    return SpecModule(net)
