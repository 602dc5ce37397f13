"""Which Ray an address names, checked without Ray: loopback or not, malformed or silent."""

import pytest
from ports import free_port

from study import cluster
from study.cluster import AddressError


@pytest.mark.parametrize(
    ("address", "local"),
    [
        (None, True),
        ("local", True),
        ("localhost", True),
        ("127.0.0.1:6379", True),
        ("localhost:6379", True),
        ("[::1]:6379", True),
        ("ray://127.0.0.1:10001", True),
        ("auto", False),
        ("10.1.2.3:6379", False),
        ("head.example.org:6379", False),
    ],
)
def test_a_driver_joining_a_loopback_head_keeps_ray_on_loopback(address, local):
    """Without it, Ray swaps 127.0.0.1 for the machine's outward address and never connects."""
    assert cluster.is_local(address) is local


def test_the_address_is_the_option_then_ray_address_then_the_recorded_one(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert cluster.address_of(None) is None
    assert cluster.address_of(None, "10.0.0.1:6379") == "10.0.0.1:6379"
    monkeypatch.setenv("RAY_ADDRESS", "auto")
    assert cluster.address_of(None, "10.0.0.1:6379") == "auto"
    assert cluster.address_of("127.0.0.1:6379", "10.0.0.1:6379") == "127.0.0.1:6379"


@pytest.mark.parametrize("address", [None, "local", "auto", "plugin://anything"])
def test_addresses_ray_judges_itself_are_not_probed(address):
    cluster.check_address(address, timeout=0.01)


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("not a host", "expected HOST:PORT"),
        ("head:port", "expected HOST:PORT"),
        ("http://127.0.0.1:8265", "the dashboard's (jobs) address"),
        ("127.0.0.1:{port}", "nothing answers at 127.0.0.1:"),
        ("ray://127.0.0.1:{port}", "nothing answers at 127.0.0.1:"),
    ],
)
def test_an_address_nothing_can_join_is_one_line(address, words):
    with pytest.raises(AddressError) as refused:
        cluster.check_address(address.format(port=free_port()), timeout=1)
    assert str(refused.value).startswith("--address: ")
    assert words in str(refused.value)
    assert "\n" not in str(refused.value)


def test_autoscaling_needs_a_cluster_that_grows():
    cluster.check_autoscaling(False, None)
    cluster.check_autoscaling(True, "auto")
    with pytest.raises(AddressError, match="a study's own local Ray never grows"):
        cluster.check_autoscaling(True, None)
