"""Models for the study: an MLP, a small CNN and the CIFAR ResNet-18.

Every model takes normalised float images (N, C, H, W) and returns logits (N, num_classes).
"""

from __future__ import annotations

from torch import Tensor, nn

MODEL_NAMES = ("mlp", "cnn", "resnet18")


def build_model(
    name: str, num_classes: int, in_channels: int, image_size: int, **options: int
) -> nn.Module:
    """A freshly initialised model (seed torch's global RNG first to fix the initialisation).

    Options: ``width`` for ``mlp`` (hidden units, default 256) and ``cnn`` (channels of the
    first block, doubled in each of the next two, default 32); ``resnet18`` takes none.
    """
    if name == "mlp":
        return mlp(in_channels * image_size * image_size, num_classes, **options)
    if name == "cnn":
        return small_cnn(in_channels, num_classes, **options)
    if name == "resnet18":
        return ResNet18(in_channels, num_classes)
    raise ValueError(f"unknown model {name!r}: choose one of {', '.join(MODEL_NAMES)}")


def mlp(in_features: int, num_classes: int, width: int = 256) -> nn.Sequential:
    """Flatten, then two hidden ReLU layers of ``width`` units and a linear read-out."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(in_features, width),
        nn.ReLU(),
        nn.Linear(width, width),
        nn.ReLU(),
        nn.Linear(width, num_classes),
    )


def _conv_bn_relu(in_channels: int, out_channels: int) -> list[nn.Module]:
    # No conv bias: the BatchNorm shift right after it does the same job.
    return [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(),
    ]


def small_cnn(in_channels: int, num_classes: int, width: int = 32) -> nn.Sequential:
    """Three conv-BN-ReLU blocks (width, 2x, 4x channels), halving the resolution after the
    first two, then global average pooling and a linear layer. Any input of 4x4 pixels or more
    works (8x8 digits and 32x32 CIFAR alike); cheap enough to train on a CPU.
    """
    return nn.Sequential(
        *_conv_bn_relu(in_channels, width),
        nn.MaxPool2d(2),
        *_conv_bn_relu(width, 2 * width),
        nn.MaxPool2d(2),
        *_conv_bn_relu(2 * width, 4 * width),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * width, num_classes),
    )


class BasicBlock(nn.Module):
    """Two 3x3 conv-BN layers with an identity shortcut, or a 1x1 conv-BN one where the block
    changes the resolution or the width."""

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        out = self.bn1(self.conv1(x)).relu()
        out = self.bn2(self.conv2(out))
        return (out + self.shortcut(x)).relu()


class ResNet18(nn.Module):
    """ResNet-18 for small images, as in kuangliu/pytorch-cifar (the paper's model): a 3x3
    stride-1 stem without max-pooling, four stages of two BasicBlocks (64, 128, 256, 512
    channels; stride 2 from the second stage on), global average pooling, a linear layer.
    11,173,962 parameters for 10 classes on RGB input.
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10) -> None:
        super().__init__()
        self.stem = nn.Sequential(*_conv_bn_relu(in_channels, 64))
        stages, channels = [], 64
        for width, stride in [(64, 1), (128, 2), (256, 2), (512, 2)]:
            stages += [BasicBlock(channels, width, stride), BasicBlock(width, width, 1)]
            channels = width
        self.stages = nn.Sequential(*stages)
        # Adaptive pooling instead of a fixed 4x4: the same model runs on 8x8 digits.
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(512, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.stages(self.stem(x))).flatten(1))
