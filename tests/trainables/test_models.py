"""Models: output shapes on digits- and CIFAR-sized inputs, parameter counts, gradients."""

import pytest
import torch
from torch import nn

from trainables.models import MODEL_NAMES, build_model

SHAPES = [(1, 8), (3, 32)]  # (channels, pixels): digits, CIFAR


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize(("channels", "size"), SHAPES)
def test_logits_for_every_class_and_gradients_for_every_parameter(name, channels, size):
    torch.manual_seed(0)
    model = build_model(name, 7, channels, size)
    logits = model(torch.randn(4, channels, size, size))
    assert logits.shape == (4, 7)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 5, 6])).backward()
    for parameter in model.parameters():
        assert parameter.grad is not None
        assert torch.isfinite(parameter.grad).all()
    assert any(parameter.grad.abs().sum() > 0 for parameter in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_single_image_in_eval_mode(name):
    model = build_model(name, 10, 3, 32).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)


@pytest.mark.parametrize(
    ("classes", "channels", "expected"),
    [
        (10, 3, 11_173_962),  # kuangliu/pytorch-cifar's ResNet18()
        (100, 3, 11_173_962 + 90 * 513),  # 90 more rows of the 512-input linear layer
        (10, 1, 11_173_962 - 2 * 9 * 64),  # two fewer input channels in the 3x3 stem
    ],
)
def test_resnet18_parameter_count(classes, channels, expected):
    assert _parameters(build_model("resnet18", classes, channels, 32)) == expected


def test_mlp_has_two_hidden_layers_of_the_given_width():
    model = build_model("mlp", 10, 1, 8, width=16)
    assert _parameters(model) == (64 * 16 + 16) + (16 * 16 + 16) + (16 * 10 + 10)
    assert _parameters(build_model("mlp", 10, 1, 8)) == (64 * 256 + 256) + (256 * 257) + 2570


def test_cnn_uses_batchnorm_and_its_width_option():
    model = build_model("cnn", 10, 3, 32, width=8)
    assert any(isinstance(module, nn.BatchNorm2d) for module in model.modules())
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [8, 16, 32]


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ValueError, match=", ".join(MODEL_NAMES)):
        build_model("vgg16", 10, 3, 32)
