"""Readability classifier (after RetinaRegen): four sigmoid labels on a FOV-cropped fundus photograph.

Two backbones behind one head:

* ``edge`` (default): a MobileNetV2-style stack of inverted residuals, ~0.5 M
  parameters, plain Conv/BN/ReLU6 that TensorRT fuses on Jetson;
* ``inception``: the InceptionV3 layout (factorised 7x7 and 3x3 branches,
  grid reductions), architecture only: nothing is downloaded.

The input is RGB in [0, 1]; the normalisation is inside the graph so every
runtime feeds the same tensor. ``forward`` returns probabilities (what the
exported ONNX outputs); ``logits`` is for training; ``features`` returns the
backbone's stage outputs for the fundus perceptual loss.
"""

from __future__ import annotations

import torch
from torch import nn

LABELS = ("valid", "macula", "disc", "retina")
INPUT_SIDE = 224
# Mean/std inside the FOV of DRIVE + DRIMDB Good classifier inputs (measured once); fixed in the graph.
FUNDUS_MEAN = (0.55, 0.36, 0.08)
FUNDUS_STD = (0.19, 0.12, 0.10)


def _cbr(cin: int, cout: int, k: int = 3, stride: int = 1, groups: int = 1,
         act: bool = True, padding: int | tuple[int, int] | None = None) -> nn.Sequential:
    pad = k // 2 if padding is None else padding
    layers: list[nn.Module] = [nn.Conv2d(cin, cout, k, stride, pad, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if act:
        layers.append(nn.ReLU6(inplace=True))
    return nn.Sequential(*layers)


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.use_res = stride == 1 and cin == cout
        self.body = nn.Sequential(
            _cbr(cin, mid, 1) if expand != 1 else nn.Identity(),
            _cbr(mid, mid, 3, stride, groups=mid),
            _cbr(mid, cout, 1, act=False),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.body(x)
        return x + y if self.use_res else y


class EdgeBackbone(nn.Module):
    """Five stages at strides 2..32; ``width`` scales every channel count."""

    # (expand, out channels, repeats, stride) per stage, after a stride-2 stem.
    STAGES = ((1, 16, 1, 1), (4, 24, 2, 2), (4, 40, 2, 2), (4, 80, 3, 2), (4, 128, 2, 2))

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = lambda n: max(8, int(round(n * width / 8)) * 8)  # noqa: E731
        self.stem = _cbr(3, c(24), 3, 2)
        cin = c(24)
        stages = []
        for expand, cout, reps, stride in self.STAGES:
            blocks = []
            for i in range(reps):
                blocks.append(InvertedResidual(cin, c(cout), stride if i == 0 else 1, expand))
                cin = c(cout)
            stages.append(nn.Sequential(*blocks))
        self.stages = nn.ModuleList(stages)
        self.head = _cbr(cin, c(384), 1)
        self.out_channels = c(384)

    def forward_features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
            if depth is not None and len(feats) >= depth:
                return feats
        feats.append(self.head(x))
        return feats


# ---------------------------------------------------------------- InceptionV3 layout
class _InceptionA(nn.Module):
    def __init__(self, cin: int, pool: int, w: float) -> None:
        super().__init__()
        c = lambda n: max(8, int(n * w))  # noqa: E731
        self.b1 = _cbr(cin, c(64), 1)
        self.b5 = nn.Sequential(_cbr(cin, c(48), 1), _cbr(c(48), c(64), 5))
        self.b3 = nn.Sequential(_cbr(cin, c(64), 1), _cbr(c(64), c(96), 3), _cbr(c(96), c(96), 3))
        self.bp = nn.Sequential(nn.AvgPool2d(3, 1, 1), _cbr(cin, c(pool), 1))
        self.out_channels = c(64) * 2 + c(96) + c(pool)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b5(x), self.b3(x), self.bp(x)], 1)


class _ReductionA(nn.Module):
    def __init__(self, cin: int, w: float) -> None:
        super().__init__()
        c = lambda n: max(8, int(n * w))  # noqa: E731
        self.b3 = _cbr(cin, c(384), 3, 2, padding=0)
        self.bd = nn.Sequential(_cbr(cin, c(64), 1), _cbr(c(64), c(96), 3), _cbr(c(96), c(96), 3, 2, padding=0))
        self.pool = nn.MaxPool2d(3, 2)
        self.out_channels = c(384) + c(96) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.bd(x), self.pool(x)], 1)


class _InceptionC(nn.Module):
    """Factorised 7x7: 1x7 then 7x1."""

    def __init__(self, cin: int, mid: int, w: float) -> None:
        super().__init__()
        c = lambda n: max(8, int(n * w))  # noqa: E731
        m = c(mid)

        def f17(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, (1, 7), padding=(0, 3), bias=False), nn.BatchNorm2d(b),
                                 nn.ReLU6(inplace=True))

        def f71(a: int, b: int) -> nn.Sequential:
            return nn.Sequential(nn.Conv2d(a, b, (7, 1), padding=(3, 0), bias=False), nn.BatchNorm2d(b),
                                 nn.ReLU6(inplace=True))

        self.b1 = _cbr(cin, c(192), 1)
        self.b7 = nn.Sequential(_cbr(cin, m, 1), f17(m, m), f71(m, c(192)))
        self.b77 = nn.Sequential(_cbr(cin, m, 1), f71(m, m), f17(m, m), f71(m, m), f17(m, c(192)))
        self.bp = nn.Sequential(nn.AvgPool2d(3, 1, 1), _cbr(cin, c(192), 1))
        self.out_channels = c(192) * 4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b1(x), self.b7(x), self.b77(x), self.bp(x)], 1)


class _ReductionB(nn.Module):
    def __init__(self, cin: int, w: float) -> None:
        super().__init__()
        c = lambda n: max(8, int(n * w))  # noqa: E731
        self.b3 = nn.Sequential(_cbr(cin, c(192), 1), _cbr(c(192), c(320), 3, 2, padding=0))
        self.b7 = nn.Sequential(
            _cbr(cin, c(192), 1),
            nn.Conv2d(c(192), c(192), (1, 7), padding=(0, 3), bias=False), nn.BatchNorm2d(c(192)), nn.ReLU6(True),
            nn.Conv2d(c(192), c(192), (7, 1), padding=(3, 0), bias=False), nn.BatchNorm2d(c(192)), nn.ReLU6(True),
            _cbr(c(192), c(192), 3, 2, padding=0))
        self.pool = nn.MaxPool2d(3, 2)
        self.out_channels = c(320) + c(192) + cin

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([self.b3(x), self.b7(x), self.pool(x)], 1)


class _InceptionE(nn.Module):
    """Expanded filter bank: 1x3 and 3x1 side by side."""

    def __init__(self, cin: int, w: float) -> None:
        super().__init__()
        c = lambda n: max(8, int(n * w))  # noqa: E731

        def pair(a: int, b: int) -> nn.ModuleList:
            return nn.ModuleList([
                nn.Sequential(nn.Conv2d(a, b, (1, 3), padding=(0, 1), bias=False), nn.BatchNorm2d(b), nn.ReLU6(True)),
                nn.Sequential(nn.Conv2d(a, b, (3, 1), padding=(1, 0), bias=False), nn.BatchNorm2d(b), nn.ReLU6(True)),
            ])

        self.b1 = _cbr(cin, c(320), 1)
        self.b3 = _cbr(cin, c(384), 1)
        self.b3s = pair(c(384), c(384))
        self.bd = nn.Sequential(_cbr(cin, c(448), 1), _cbr(c(448), c(384), 3))
        self.bds = pair(c(384), c(384))
        self.bp = nn.Sequential(nn.AvgPool2d(3, 1, 1), _cbr(cin, c(192), 1))
        self.out_channels = c(320) + 4 * c(384) + c(192)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        a = self.b3(x)
        d = self.bd(x)
        return torch.cat([self.b1(x), *(m(a) for m in self.b3s), *(m(d) for m in self.bds), self.bp(x)], 1)


class InceptionBackbone(nn.Module):
    """InceptionV3's stem, 3xA, reduction, 4xC, reduction, 2xE (no auxiliary head); ~21.8 M at width 1."""

    def __init__(self, width: float = 1.0) -> None:
        super().__init__()
        c = lambda n: max(8, int(n * width))  # noqa: E731
        self.stem = nn.Sequential(
            _cbr(3, c(32), 3, 2, padding=0), _cbr(c(32), c(32), 3, padding=0), _cbr(c(32), c(64), 3),
            nn.MaxPool2d(3, 2), _cbr(c(64), c(80), 1), _cbr(c(80), c(192), 3, padding=0), nn.MaxPool2d(3, 2))
        a1 = _InceptionA(c(192), 32, width)
        a2 = _InceptionA(a1.out_channels, 64, width)
        a3 = _InceptionA(a2.out_channels, 64, width)
        ra = _ReductionA(a3.out_channels, width)
        cs = [_InceptionC(ra.out_channels, 128, width)]
        for mid in (160, 160, 192):
            cs.append(_InceptionC(cs[-1].out_channels, mid, width))
        rb = _ReductionB(cs[-1].out_channels, width)
        e1 = _InceptionE(rb.out_channels, width)
        e2 = _InceptionE(e1.out_channels, width)
        self.stages = nn.ModuleList([nn.Sequential(a1, a2, a3), nn.Sequential(ra, *cs), nn.Sequential(rb, e1, e2)])
        self.out_channels = e2.out_channels

    def forward_features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        feats: list[torch.Tensor] = []
        x = self.stem(x)
        feats.append(x)
        for stage in self.stages:
            if depth is not None and len(feats) >= depth:
                break
            x = stage(x)
            feats.append(x)
        return feats


BACKBONES = {"edge": EdgeBackbone, "inception": InceptionBackbone}


class ReadabilityNet(nn.Module):
    task = "readability"
    labels = LABELS

    def __init__(self, backbone: str = "edge", width: float = 1.0, dropout: float = 0.2,
                 input_side: int = INPUT_SIDE) -> None:
        super().__init__()
        if backbone not in BACKBONES:
            raise ValueError(f"unknown backbone {backbone!r}; choose one of {', '.join(BACKBONES)}")
        self.input_side = input_side
        self.backbone = BACKBONES[backbone](width)
        self.register_buffer("mean", torch.tensor(FUNDUS_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(FUNDUS_STD).view(1, 3, 1, 1), persistent=False)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.drop = nn.Dropout(dropout)
        self.fc = nn.Linear(self.backbone.out_channels, len(LABELS))

    def features(self, x: torch.Tensor, depth: int | None = None) -> list[torch.Tensor]:
        return self.backbone.forward_features((x - self.mean) / self.std, depth)

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        f = self.features(x)[-1]
        return self.fc(self.drop(torch.flatten(self.pool(f), 1)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logits(x))


class FeatureExtractor(nn.Module):
    """The first ``depth`` stage outputs of a readability backbone, for the fundus perceptual loss."""

    def __init__(self, net: ReadabilityNet, depth: int = 3) -> None:
        super().__init__()
        self.net = net.eval()
        self.depth = depth

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        return self.net.features(x, self.depth)
