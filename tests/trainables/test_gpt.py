"""The small GPT: causal, tied, nanoGPT's initialisation, its parameter count and AdamW groups
against hand-computed expectations, reproducible from a seed, and able to learn."""

import math

import pytest
import torch
from torch.nn import functional as F

from trainables.gpt import GPT, build_gpt, count_parameters, flops_per_token, parameter_groups
from trainables.plugins import WorkloadError

TINY = {"layers": 2, "heads": 4, "width": 32}


@pytest.fixture(autouse=True)
def one_thread():
    """One torch thread, as a trial trains (one CPU per trial): tiny models run 10x slower on
    two threads of a busy machine than on one."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _tiny(vocab_size: int = 11, context: int = 8, seed: int = 0, **options) -> GPT:
    torch.manual_seed(seed)
    return GPT(vocab_size, context, **{**TINY, **options}).eval()


def test_logits_at_a_position_never_see_later_tokens():
    model = _tiny(context=16)
    tokens = torch.randint(0, 11, (3, 16), generator=torch.Generator().manual_seed(1))
    changed = tokens.clone()
    changed[:, 9] = (changed[:, 9] + 1) % 11
    with torch.no_grad():
        before, after = model(tokens), model(changed)
    assert before.shape == (3, 16, 11)
    torch.testing.assert_close(after[:, :9], before[:, :9], rtol=0, atol=1e-6)
    # Not vacuous: from the changed token on, every position's logits move.
    moved = (after[:, 9:] - before[:, 9:]).abs().amax(dim=-1)
    assert bool((moved > 1e-4).all())


def test_the_head_is_the_token_embedding():
    model = _tiny()
    assert model.head.weight is model.token_embedding.weight
    assert sum(p is model.token_embedding.weight for p in model.parameters()) == 1


@pytest.mark.parametrize(("vocab", "context", "layers", "width"), [(11, 8, 1, 32), (7, 5, 2, 32)])
def test_parameter_count_is_the_hand_formula(vocab, context, layers, width):
    d = width
    # Per block: 2 LayerNorms (2d each); qkv 3d^2 + 3d; attention projection d^2 + d; MLP
    # 4d^2 + 4d up and 4d^2 + d down. Plus both embeddings and the final LayerNorm; the tied
    # head adds nothing.
    block = 2 * 2 * d + (3 * d * d + 3 * d) + (d * d + d) + (4 * d * d + 4 * d) + (4 * d * d + d)
    expected = vocab * d + context * d + layers * block + 2 * d
    model = GPT(vocab, context, layers=layers, heads=4, width=width)
    assert count_parameters(model) == expected
    assert (
        flops_per_token(model, context) == 6 * (expected - context * d) + 12 * layers * d * context
    )


def test_parameter_groups_decay_exactly_the_block_matrices():
    model = _tiny()
    groups = parameter_groups(model, weight_decay=0.1)
    assert [group["weight_decay"] for group in groups] == [0.1, 0.0]
    grouped = [id(p) for group in groups for p in group["params"]]
    assert len(grouped) == len(set(grouped))  # none twice, the tied weight included
    assert set(grouped) == {id(p) for p in model.parameters()}
    matrices = [
        m.weight
        for block in model.blocks
        for m in (block.attention.qkv, block.attention.proj, block.mlp.fc, block.mlp.proj)
    ]
    assert {id(p) for p in groups[0]["params"]} == {id(p) for p in matrices}
    embeddings = {id(model.token_embedding.weight), id(model.position_embedding.weight)}
    vectors = {id(p) for p in model.parameters() if p.dim() == 1}  # biases, norm weights
    assert {id(p) for p in groups[1]["params"]} == embeddings | vectors
    torch.optim.AdamW(groups, lr=1e-3)  # AdamW takes them as they are


def test_initialisation_is_nanogpts():
    torch.manual_seed(0)
    model = GPT(50, 16, layers=2, heads=4, width=64)
    for block in model.blocks:
        assert block.mlp.fc.weight.std().item() == pytest.approx(0.02, rel=0.05)
        assert block.mlp.proj.weight.std().item() == pytest.approx(0.02 / math.sqrt(4), rel=0.05)
        assert block.attention.proj.weight.std().item() == pytest.approx(0.01, rel=0.1)
        for linear in (block.attention.qkv, block.attention.proj, block.mlp.fc, block.mlp.proj):
            assert bool((linear.bias == 0).all())
        assert bool((block.norm1.weight == 1).all())
    assert model.token_embedding.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_the_same_seed_gives_the_same_model():
    tokens = torch.arange(8).repeat(2, 1) % 11
    first, again, other = _tiny(seed=3), _tiny(seed=3), _tiny(seed=4)
    for a, b in zip(first.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(first(tokens), again(tokens))
        assert not torch.equal(first(tokens), other(tokens))


def test_a_sequence_longer_than_the_context_is_refused():
    model = _tiny(context=8)
    assert model(torch.zeros(1, 8, dtype=torch.long)).shape == (1, 8, 11)
    with pytest.raises(ValueError, match="longer than the context 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"width": 30}, "multiple of heads"),
        ({"depth": 2}, "cannot be called"),
        ({"dropout": 1}, "dropout"),
    ],
)
def test_build_gpt_refuses_a_bad_option_in_one_line(options, match):
    with pytest.raises(WorkloadError, match=match) as caught:
        build_gpt(11, 8, **options)
    assert str(caught.value).startswith("model.name: ")
    assert "\n" not in str(caught.value)
    assert isinstance(build_gpt(11, 8, width=32, layers=1), GPT)


def test_it_learns_a_repeating_sequence():
    torch.manual_seed(0)
    model = GPT(5, 12, layers=1, heads=2, width=32)
    stream = torch.arange(200) % 5  # 0 1 2 3 4 0 1 ...: each next token is certain
    starts = torch.arange(0, 180, 3)
    inputs = stream[starts[:, None] + torch.arange(12)]
    targets = stream[starts[:, None] + torch.arange(12) + 1]
    optimizer = torch.optim.AdamW(parameter_groups(model, 0.01), lr=3e-3)
    for _ in range(200):
        loss = F.cross_entropy(model(inputs).flatten(0, 1), targets.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.02
