"""Models for the study: an MLP, a small CNN and the CIFAR ResNet-18.

Every model takes a float batch ``[N, *input_shape]`` (normalised images ``(N, C, H, W)`` for
the built-ins) and returns logits ``(N, num_classes)``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from trainables.plugins import WorkloadError, check_call, resolve

# Built-in models, registered as any user's model is: name -> "module:callable".
MODELS = {
    "mlp": "trainables.models:mlp",
    "cnn": "trainables.models:small_cnn",
    "resnet18": "trainables.models:resnet18",
}
MODEL_NAMES = tuple(MODELS)
KEY = "model.name"  # the study key a model's problems are reported under


def build_model(
    name: str,
    input_shape: Sequence[int],
    num_classes: int,
    options: Mapping[str, Any] | None = None,
) -> nn.Module:
    """A freshly initialised model (seed torch's global RNG first to fix the initialisation).

    ``name`` is a built-in (:data:`MODELS`) or ``"module:callable"``, called as
    ``callable(input_shape=..., num_classes=..., **options)`` and returning an ``nn.Module``
    that maps a batch ``[N, *input_shape]`` to logits ``[N, num_classes]``. Built-in options:
    ``width`` for ``mlp`` (hidden units, default 256) and ``cnn`` (channels of the first block,
    doubled in each of the next two, default 32); ``resnet18`` takes none. A problem is a
    one-line :class:`~trainables.plugins.WorkloadError` naming ``model.name``.
    """
    factory = resolve(name, MODELS, KEY)
    kwargs = {"input_shape": tuple(input_shape), "num_classes": num_classes, **(options or {})}
    check_call(factory, KEY, **kwargs)
    try:
        model = factory(**kwargs)
    except Exception as error:  # the user's constructor: it would fail on every try alike
        first = (str(error).splitlines() or [""])[0]
        raise WorkloadError(f"{KEY}: {name} failed: {type(error).__name__}: {first}") from None
    if not isinstance(model, nn.Module):
        raise WorkloadError(f"{KEY}: {name} returned a {type(model).__name__}, not an nn.Module")
    return model


def check_output(model: nn.Module, inputs: Tensor, num_classes: int, name: str) -> None:
    """Refuse a model whose logits for ``inputs`` are not ``[N, num_classes]``: one forward
    pass, in eval mode, without gradients (the driver's check before any trial starts)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            logits = model(inputs)
    except Exception as error:  # any failure of the user's forward is the same refusal
        first = (str(error).splitlines() or [""])[0]
        raise WorkloadError(
            f"{KEY}: {name} fails on a batch of shape {tuple(inputs.shape)}: "
            f"{type(error).__name__}: {first}"
        ) from None
    finally:
        model.train(was_training)
    expected = (len(inputs), num_classes)
    if not isinstance(logits, Tensor) or tuple(logits.shape) != expected:
        found = tuple(logits.shape) if isinstance(logits, Tensor) else type(logits).__name__
        raise WorkloadError(
            f"{KEY}: {name} returns {found} for a batch of {len(inputs)}; expected logits "
            f"{expected}, one column per class"
        )


def mlp(input_shape: Sequence[int], num_classes: int, width: int = 256) -> nn.Sequential:
    """Flatten, then two hidden ReLU layers of ``width`` units and a linear read-out."""
    return nn.Sequential(
        nn.Flatten(),
        nn.Linear(math.prod(input_shape), width),
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


def small_cnn(input_shape: Sequence[int], num_classes: int, width: int = 32) -> nn.Sequential:
    """Three conv-BN-ReLU blocks (width, 2x, 4x channels), halving the resolution after the
    first two, then global average pooling and a linear layer. Any input of 4x4 pixels or more
    works (8x8 digits and 32x32 CIFAR alike); cheap enough to train on a CPU.
    """
    in_channels = input_shape[0]
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


def resnet18(input_shape: Sequence[int], num_classes: int) -> ResNet18:
    """:class:`ResNet18` for images of ``input_shape`` ``(C, H, W)``."""
    return ResNet18(input_shape[0], num_classes)
