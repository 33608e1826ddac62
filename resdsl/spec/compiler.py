"""Checked model to torch.nn.Module. Module names follow the spec: conv3_x.b1.conv1.weight."""

from __future__ import annotations

import torch
from torch import nn

from . import ir
from .inits import zeroed_bns
from .primitives import PRIMITIVES


class SeqModule(nn.Module):
    """x -> items(x), where each join adds the sequence's input through its shortcut: out = main + sc(input)."""

    def __init__(self, seq: ir.Seq):
        super().__init__()
        # The plan is a tuple of (is_join, module) so forward is one flat loop; joins of option "none"
        # (plain nets) are left out entirely.
        plan = []
        for item in seq.items:
            if isinstance(item, ir.Join):
                if item.option == "none":
                    continue
                module = SeqModule(item.shortcut) if item.shortcut is not None else None
                if module is not None:
                    self.add_module(item.shortcut.name, module)
                plan.append((True, module))
            else:
                module = _build_layer(item) if isinstance(item, ir.Layer) else SeqModule(item)
                self.add_module(item.name, module)
                plan.append((False, module))
        self._plan = tuple(plan)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        block_input = x
        for is_join, module in self._plan:
            if is_join:
                x = x + (block_input if module is None else module(block_input))
            else:
                x = module(x)
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
