"""trainables/plugins.py: a ``"module:callable"`` a study names is imported from the user's own
module, and every way it can be wrong is one line naming the study key."""

import pytest

import trainables.data
from trainables.data import DATASETS
from trainables.plugins import WorkloadError, check_call, resolve

KEY = "data.dataset"
BUILTINS = {"mine": "trainables.data:digits", "other": "trainables.data:synthetic"}


def _refusal(spec: str, key: str = KEY, builtins=BUILTINS) -> str:
    with pytest.raises(WorkloadError) as refused:
        resolve(spec, builtins, key)
    message = str(refused.value)
    assert "\n" not in message
    assert message.startswith(f"{key}: ")
    return message


def test_a_users_module_callable_is_imported_and_returned(make_module):
    name = make_module(
        """
        def load(size=3):
            return list(range(size))

        class Factory:
            @staticmethod
            def build(width):
                return ("built", width)
        """
    )

    load = resolve(f"{name}:load", BUILTINS, KEY)
    build = resolve(f"{name}:Factory.build", BUILTINS, KEY)

    assert load.__module__ == name
    assert load() == [0, 1, 2]
    assert load(size=5) == [0, 1, 2, 3, 4]
    assert build(7) == ("built", 7)


def test_a_builtin_name_is_the_module_callable_it_is_registered_as():
    assert resolve("mine", BUILTINS, KEY) is trainables.data.digits
    assert resolve("digits", DATASETS, KEY) is trainables.data.digits
    # The registered string itself works too, as any user's would.
    assert resolve("trainables.data:synthetic", DATASETS, KEY) is trainables.data.synthetic


def test_a_module_that_does_not_exist():
    message = _refusal("knee_no_such_module_anywhere:load")
    assert "cannot import knee_no_such_module_anywhere" in message
    assert "PYTHONPATH" in message


def test_a_module_whose_own_import_fails_names_the_missing_dependency(make_module):
    name = make_module("import knee_missing_dependency_of_the_users_module\n")
    message = _refusal(f"{name}:load")
    assert f"cannot import {name}" in message
    assert "knee_missing_dependency_of_the_users_module" in message


def test_a_module_raising_on_import_is_one_line_with_the_error(make_module):
    name = make_module('raise RuntimeError("the cluster has no GPU\\nsecond line of detail")\n')
    message = _refusal(f"{name}:load", key="model.name")
    assert message == f"model.name: importing {name} failed: RuntimeError: the cluster has no GPU"


def test_a_module_with_a_syntax_error(make_module):
    name = make_module("def load(:\n")
    assert "SyntaxError" in _refusal(f"{name}:load")


@pytest.mark.parametrize("attribute", ["missing", "load.missing", "Loader.missing"])
def test_a_missing_attribute(make_module, attribute):
    name = make_module(
        """
        def load():
            return None

        class Loader:
            pass
        """
    )
    assert _refusal(f"{name}:{attribute}") == f"{KEY}: {name} has no {attribute!r}"


def test_something_that_is_not_callable(make_module):
    name = make_module("load = 3\nSETTINGS = {'a': 1}\n")
    assert _refusal(f"{name}:load") == f"{KEY}: {name}:load is a int, not a callable"
    assert "is a dict, not a callable" in _refusal(f"{name}:SETTINGS")


@pytest.mark.parametrize("spec", ["mypkg.data.load", "mnist", "mypkg:", ":load", ""])
def test_a_spec_that_is_no_builtin_and_has_no_module_and_callable(spec):
    message = _refusal(spec, key="trainable")
    assert f"{spec!r} is neither a built-in (mine, other) nor 'module:callable'" in message


def _two_sizes(size, noise=0.0, *, channels=3):
    return size, noise, channels


@pytest.mark.parametrize(
    ("args", "kwargs", "said"),
    [
        ((), {}, "missing a required argument: 'size'"),
        ((1,), {"colour": True}, "unexpected keyword argument 'colour'"),
        ((1, 2, 3), {}, "too many positional arguments"),
        ((), {"noise": 0.1}, "missing a required argument: 'size'"),
    ],
)
def test_check_call_refuses_arguments_the_signature_does_not_take(args, kwargs, said):
    with pytest.raises(WorkloadError) as refused:
        check_call(_two_sizes, "model.name", *args, **kwargs)
    message = str(refused.value)
    assert message.startswith("model.name: ")
    assert "\n" not in message
    assert said in message
    assert "_two_sizes" in message


@pytest.mark.parametrize(
    ("args", "kwargs"), [((1,), {}), ((), {"size": 1, "noise": 2, "channels": 1}), ((1, 2), {})]
)
def test_check_call_accepts_what_the_signature_takes(args, kwargs):
    check_call(_two_sizes, KEY, *args, **kwargs)
    assert _two_sizes(*args, **kwargs)  # and the call it vouched for does work


def test_check_call_leaves_a_callable_without_a_signature_to_its_call():
    check_call(print, KEY, 1, 2, sep="")  # a builtin inspect cannot read: no refusal


def test_a_workload_error_is_a_value_error():
    assert issubclass(WorkloadError, ValueError)
