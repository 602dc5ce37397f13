"""Models: output shapes on digits- and CIFAR-sized inputs, parameter counts, gradients; a user's
factory gets the data's shape and its options, and a model that cannot work is one line naming
``model.name``."""

import importlib

import pytest
import torch
from torch import nn

from trainables.models import MODEL_NAMES, build_model, check_output
from trainables.plugins import WorkloadError

SHAPES = [(1, 8, 8), (3, 32, 32)]  # digits, CIFAR


def _parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
@pytest.mark.parametrize("shape", SHAPES)
def test_logits_for_every_class_and_gradients_for_every_parameter(name, shape):
    torch.manual_seed(0)
    model = build_model(name, shape, 7)
    logits = model(torch.randn(4, *shape))
    assert logits.shape == (4, 7)
    nn.functional.cross_entropy(logits, torch.tensor([0, 1, 5, 6])).backward()
    for parameter in model.parameters():
        assert parameter.grad is not None
        assert torch.isfinite(parameter.grad).all()
    assert any(parameter.grad.abs().sum() > 0 for parameter in model.parameters())


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_a_single_image_in_eval_mode(name):
    model = build_model(name, (3, 32, 32), 10).eval()
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 10)
    check_output(model, torch.randn(2, 3, 32, 32), 10, name)


@pytest.mark.parametrize(
    ("classes", "channels", "expected"),
    [
        (10, 3, 11_173_962),  # kuangliu/pytorch-cifar's ResNet18()
        (100, 3, 11_173_962 + 90 * 513),  # 90 more rows of the 512-input linear layer
        (10, 1, 11_173_962 - 2 * 9 * 64),  # two fewer input channels in the 3x3 stem
    ],
)
def test_resnet18_parameter_count(classes, channels, expected):
    assert _parameters(build_model("resnet18", (channels, 32, 32), classes)) == expected


def test_mlp_has_two_hidden_layers_of_the_given_width():
    model = build_model("mlp", (1, 8, 8), 10, {"width": 16})
    assert _parameters(model) == (64 * 16 + 16) + (16 * 16 + 16) + (16 * 10 + 10)
    assert _parameters(build_model("mlp", (1, 8, 8), 10)) == (64 * 256 + 256) + (256 * 257) + 2570


def test_the_mlp_takes_any_input_shape():
    model = build_model("mlp", (20,), 3, {"width": 4})  # feature vectors, not images
    assert _parameters(model) == (20 * 4 + 4) + (4 * 4 + 4) + (4 * 3 + 3)
    assert model(torch.randn(5, 20)).shape == (5, 3)
    volumes = build_model("mlp", (2, 3, 4, 5), 6, {"width": 8})
    assert volumes(torch.randn(2, 2, 3, 4, 5)).shape == (2, 6)


def test_cnn_uses_batchnorm_and_its_width_option():
    model = build_model("cnn", (3, 32, 32), 10, {"width": 8})
    assert any(isinstance(module, nn.BatchNorm2d) for module in model.modules())
    widths = [m.out_channels for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert widths == [8, 16, 32]


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(WorkloadError, match=r"^model\.name: .*" + ", ".join(MODEL_NAMES)):
        build_model("vgg16", (3, 32, 32), 10)


def test_an_option_a_builtin_does_not_take_names_the_key():
    with pytest.raises(WorkloadError, match=r"^model\.name: .*depth"):
        build_model("resnet18", (3, 32, 32), 10, {"depth": 34})


# --- a user's model -------------------------------------------------------------------------

USER_MODELS = """
import math
from torch import nn

SEEN = []

def linear(input_shape, num_classes, hidden=5, bias=True):
    SEEN.append((input_shape, num_classes, hidden, bias))
    return nn.Sequential(
        nn.Flatten(), nn.Linear(math.prod(input_shape), hidden), nn.Linear(hidden, num_classes)
    )

def not_a_module(input_shape, num_classes):
    return {"weights": [1, 2]}

def raises(input_shape, num_classes):
    raise ValueError("width must be even\\n(and a second line of detail)")

def too_few_columns(input_shape, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(input_shape), num_classes - 1))

def wrong_features(input_shape, num_classes):
    return nn.Linear(math.prod(input_shape) + 1, num_classes)

class Pair(nn.Module):
    def __init__(self, features, num_classes):
        super().__init__()
        self.linear = nn.Linear(features, num_classes)

    def forward(self, x):
        return self.linear(x.flatten(1)), x

def pair(input_shape, num_classes):
    return Pair(math.prod(input_shape), num_classes)

def no_options(input_shape, num_classes):
    return nn.Linear(1, num_classes)
"""


@pytest.fixture
def user_models(make_module):
    name = make_module(USER_MODELS)
    return name, importlib.import_module(name)


def _refusal(call) -> str:
    with pytest.raises(WorkloadError) as refused:
        call()
    message = str(refused.value)
    assert message.startswith("model.name: ")
    assert "\n" not in message
    return message


def test_a_users_factory_gets_the_input_shape_the_classes_and_its_options(user_models):
    name, module = user_models
    model = build_model(f"{name}:linear", [2, 3, 4], 7, {"hidden": 9, "bias": False})

    assert module.SEEN == [((2, 3, 4), 7, 9, False)]
    assert _parameters(model) == (24 * 9 + 9) + (9 * 7 + 7)
    check_output(model, torch.randn(3, 2, 3, 4), 7, f"{name}:linear")  # a model that works


def test_a_factory_returning_no_module(user_models):
    name, _ = user_models
    message = _refusal(lambda: build_model(f"{name}:not_a_module", (4,), 3))
    assert message == f"model.name: {name}:not_a_module returned a dict, not an nn.Module"


def test_a_factory_that_raises_is_one_line(user_models):
    name, _ = user_models
    message = _refusal(lambda: build_model(f"{name}:raises", (4,), 3))
    assert message == f"model.name: {name}:raises failed: ValueError: width must be even"


def test_an_option_the_factory_does_not_take(user_models):
    name, _ = user_models
    message = _refusal(lambda: build_model(f"{name}:no_options", (4,), 3, {"width": 8}))
    assert "width" in message


def test_logits_with_the_wrong_number_of_columns(user_models):
    name, _ = user_models
    spec = f"{name}:too_few_columns"
    model = build_model(spec, (1, 8, 8), 10)
    message = _refusal(lambda: check_output(model, torch.randn(2, 1, 8, 8), 10, spec))
    assert "returns (2, 9) for a batch of 2; expected logits (2, 10)" in message


def test_a_model_returning_no_tensor(user_models):
    name, _ = user_models
    model = build_model(f"{name}:pair", (4,), 3)
    message = _refusal(lambda: check_output(model, torch.randn(2, 4), 3, "pair"))
    assert "returns tuple for a batch of 2" in message


def test_a_forward_that_raises_is_one_line_with_the_batch_shape(user_models):
    name, _ = user_models
    model = build_model(f"{name}:wrong_features", (1, 8, 8), 10)
    message = _refusal(lambda: check_output(model, torch.randn(2, 1, 8, 8), 10, "wrong"))
    assert message.startswith("model.name: wrong fails on a batch of shape (2, 1, 8, 8): ")
    assert "RuntimeError" in message


@pytest.mark.parametrize("training", [True, False])
def test_check_output_leaves_the_model_as_it_found_it(training):
    torch.manual_seed(0)
    model = build_model("cnn", (1, 8, 8), 10, {"width": 4}).train(training)
    before = {k: v.clone() for k, v in model.state_dict().items()}

    check_output(model, torch.randn(3, 1, 8, 8), 10, "cnn")

    assert model.training is training
    assert all(m.training is training for m in model.modules())
    after = model.state_dict()  # eval mode: BatchNorm's running statistics untouched
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is None for p in model.parameters())
