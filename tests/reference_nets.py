"""The shipped specs' networks written in plain PyTorch, the way torchvision, pycls and the papers'
code write them. Tests copy these weights into the compiled specs and compare outputs.

Each module registers its submodules in the order the spec computes them (main path, then the
shortcut), so parameters and buffers pair up one to one by position. In-place activations and
adaptive average pooling as torchvision's models have them: bench/model_step.py times these
references as the plain-PyTorch baseline.
"""

from __future__ import annotations

import math

import torch
from torch import nn


def _pool(x):
    """Global average pooling to (N, C), as torchvision's models do it."""
    return torch.flatten(nn.functional.adaptive_avg_pool2d(x, 1), 1)


def conv_bn(cin, cout, k, stride=1, groups=1):
    return [nn.Conv2d(cin, cout, k, stride, (k - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]


class Bottleneck(nn.Module):
    """torchvision's Bottleneck (stride in the 3x3), with ResNeXt groups, Wide width, SE and ResNet-D options."""

    def __init__(self, cin, planes, stride=1, groups=1, base_width=64, se_reduction=0, avg_down=False):
        super().__init__()
        width = int(planes * (base_width / 64.0)) * groups
        cout = planes * 4
        self.body = nn.Sequential(*conv_bn(cin, width, 1), nn.ReLU(inplace=True), *conv_bn(width, width, 3, stride, groups),
                                  nn.ReLU(inplace=True), *conv_bn(width, cout, 1))
        self.se = None
        if se_reduction:
            self.se = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cout, cout // se_reduction, 1), nn.ReLU(inplace=True),
                                    nn.Conv2d(cout // se_reduction, cout, 1), nn.Sigmoid())
        self.down = None
        if stride != 1 or cin != cout:
            if avg_down:
                pool = [nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)] if stride != 1 else []
                self.down = nn.Sequential(*pool, *conv_bn(cin, cout, 1))
            else:
                self.down = nn.Sequential(*conv_bn(cin, cout, 1, stride))

    def forward(self, x):
        y = self.body(x)
        if self.se is not None:
            y = y * self.se(y)
        return torch.relu(y + (x if self.down is None else self.down(x)))


class ImageNetResNet(nn.Module):
    def __init__(self, layers, groups=1, base_width=64, se_reduction=0, deep_stem=False, classes=1000):
        super().__init__()
        if deep_stem:
            self.stem = nn.Sequential(*conv_bn(3, 32, 3, 2), nn.ReLU(inplace=True), *conv_bn(32, 32, 3), nn.ReLU(inplace=True),
                                      *conv_bn(32, 64, 3), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1))
        else:
            self.stem = nn.Sequential(nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                                      nn.MaxPool2d(3, 2, 1))
        blocks, cin = [], 64
        for i, (planes, count) in enumerate(zip((64, 128, 256, 512), layers)):
            for j in range(count):
                blocks.append(Bottleneck(cin, planes, 2 if (i > 0 and j == 0) else 1, groups, base_width,
                                         se_reduction, avg_down=deep_stem))
                cin = planes * 4
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(_pool(self.blocks(self.stem(x))))


def wide_resnet50_2():
    return ImageNetResNet([3, 4, 6, 3], base_width=128)


def resnext50_32x4d():
    return ImageNetResNet([3, 4, 6, 3], groups=32, base_width=4)


def resnet200():
    return ImageNetResNet([3, 24, 36, 3])


def se_resnet50():
    return ImageNetResNet([3, 4, 6, 3], se_reduction=16)


def resnet50d():
    return ImageNetResNet([3, 4, 6, 3], deep_stem=True)


# ---------------------------------------------------------------- MobileNetV2 (torchvision)
def make_divisible(v, divisor=8, min_value=None):
    new = max(min_value or divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, t):
        super().__init__()
        hidden = cin * t
        layers = [] if t == 1 else [*conv_bn(cin, hidden, 1), nn.ReLU6(inplace=True)]
        layers += [*conv_bn(hidden, hidden, 3, stride, groups=hidden), nn.ReLU6(inplace=True), *conv_bn(hidden, cout, 1)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


class MobileNetV2(nn.Module):
    SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2),
                (6, 320, 1, 1)]

    def __init__(self, classes=1000, width_mult=1.0, dropout=0.2):
        super().__init__()
        cin = make_divisible(32 * width_mult)
        last = make_divisible(1280 * max(1.0, width_mult))
        layers = [*conv_bn(3, cin, 3, 2), nn.ReLU6(inplace=True)]
        for t, c, n, s in self.SETTINGS:
            cout = make_divisible(c * width_mult)
            for i in range(n):
                layers.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        layers += [*conv_bn(cin, last, 1), nn.ReLU6(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, classes))

    def forward(self, x):
        return self.classifier(_pool(self.features(x)))


# ---------------------------------------------------------------- RegNetX (pycls)
def regnet_widths_depths(w0, wa, wm, depth, q=8):
    """pycls's generate_regnet: per-block widths by the quantized linear rule, grouped into stages."""
    ws_cont = [w0 + wa * i for i in range(depth)]
    ks = [round(math.log(w / w0) / math.log(wm)) for w in ws_cont]
    ws_all = [round(w0 * wm ** k / q) * q for k in ks]
    widths = sorted(set(ws_all))
    return widths, [ws_all.count(w) for w in widths]


def regnet_adjust(widths, group_width, bottleneck=1.0):
    """pycls's adjust_block_compatibility for one group width: group widths and widths made compatible."""
    vs = [int(max(1, w * bottleneck)) for w in widths]
    gs = [int(min(group_width, v)) for v in vs]
    ms = [math.lcm(g, int(bottleneck)) if bottleneck > 1 else g for g in gs]
    vs = [max(m, int(round(v / m) * m)) for v, m in zip(vs, ms)]
    return [int(v / bottleneck) for v in vs], gs


class XBlock(nn.Module):
    def __init__(self, cin, cout, stride, group_width):
        super().__init__()
        self.body = nn.Sequential(*conv_bn(cin, cout, 1), nn.ReLU(inplace=True),
                                  *conv_bn(cout, cout, 3, stride, groups=cout // group_width), nn.ReLU(inplace=True),
                                  *conv_bn(cout, cout, 1))
        self.proj = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if (cin != cout or stride != 1) else None

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.proj is None else self.proj(x)))


class RegNetX(nn.Module):
    def __init__(self, w0=24, wa=36.44, wm=2.49, depth=13, group_width=8, classes=1000):
        super().__init__()
        widths, depths = regnet_widths_depths(w0, wa, wm, depth)
        widths, groups = regnet_adjust(widths, group_width)
        layers, cin = [*conv_bn(3, 32, 3, 2), nn.ReLU(inplace=True)], 32
        for w, d, g in zip(widths, depths, groups):
            for i in range(d):
                layers.append(XBlock(cin, w, 2 if i == 0 else 1, g))
                cin = w
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(_pool(self.features(x)))


# ---------------------------------------------------------------- CIFAR: pre-activation ResNet-164, WRN-28-10
class PreActBottleneck(nn.Module):
    """He et al. 2016 (Identity Mappings): BN-ReLU before each conv; the projection reads the shared BN-ReLU."""

    def __init__(self, cin, planes, stride):
        super().__init__()
        cout = planes * 4
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self.body = nn.Sequential(nn.Conv2d(cin, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
                                  nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes),
                                  nn.ReLU(inplace=True), nn.Conv2d(planes, cout, 1, bias=False))
        self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        pre = self.pre(x)
        return self.body(pre) + (x if self.proj is None else self.proj(pre))


class PreActResNet164(nn.Module):
    def __init__(self, n=18, classes=10):
        super().__init__()
        layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
        for i, planes in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(PreActBottleneck(cin, planes, 2 if (i > 0 and j == 0) else 1))
                cin = planes * 4
        layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(_pool(self.features(x)))


class WideBasic(nn.Module):
    """Zagoruyko and Komodakis 2016: BN-ReLU-conv3x3-dropout-BN-ReLU-conv3x3; 1x1 projection (no BN) when the shape changes."""

    def __init__(self, cin, cout, stride, dropout):
        super().__init__()
        self.pre = nn.Sequential(nn.BatchNorm2d(cin), nn.ReLU(inplace=True))
        self.body = nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.Dropout(dropout),
                                  nn.BatchNorm2d(cout), nn.ReLU(inplace=True), nn.Conv2d(cout, cout, 3, 1, 1, bias=False))
        self.proj = nn.Conv2d(cin, cout, 1, stride, bias=False) if (stride != 1 or cin != cout) else None

    def forward(self, x):
        pre = self.pre(x)
        return self.body(pre) + (x if self.proj is None else self.proj(pre))


class WideResNet(nn.Module):
    def __init__(self, depth=28, k=10, dropout=0.3, classes=10):
        super().__init__()
        n = (depth - 4) // 6
        layers, cin = [nn.Conv2d(3, 16, 3, 1, 1, bias=False)], 16
        for i, width in enumerate((16 * k, 32 * k, 64 * k)):
            for j in range(n):
                layers.append(WideBasic(cin, width, 2 if (i > 0 and j == 0) else 1, dropout))
                cin = width
        layers += [nn.BatchNorm2d(cin), nn.ReLU(inplace=True)]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(cin, classes)

    def forward(self, x):
        return self.fc(_pool(self.features(x)))


# spec file -> (reference constructor, input shape, the parameter count issue 9 states)
REFERENCES = {
    "wide_resnet50_2": (wide_resnet50_2, (3, 224, 224), 68_883_240),
    "resnext50_32x4d": (resnext50_32x4d, (3, 224, 224), 25_028_904),
    "mobilenetv2": (MobileNetV2, (3, 224, 224), 3_504_872),
    "regnet": (RegNetX, (3, 224, 224), 2_684_792),
    "resnet200": (resnet200, (3, 224, 224), 64_673_832),
    "se_resnet50": (se_resnet50, (3, 224, 224), 28_088_024),
    "resnet50d": (resnet50d, (3, 224, 224), 25_576_264),
    "preact_resnet164": (PreActResNet164, (3, 32, 32), 1_703_258),
    "wrn28_10": (WideResNet, (3, 32, 32), 36_479_194),
}
