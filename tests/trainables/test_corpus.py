"""Text corpora on the device: the embedded pydoc corpus against its own bytes, contiguous
splits, byte and char vocabularies, text files and nanoGPT bin folders written here, window
sampling and the unigram baseline, and each refusal as one line naming its key."""

import hashlib
import json
import math
import pickle
import platform
from collections import Counter
from pydoc_data.topics import topics

import numpy as np
import pytest
import torch

from trainables.corpus import Corpus, eval_windows, load_corpus, random_windows, unigram_entropy
from trainables.plugins import WorkloadError

DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
PYDOC = "\n\n".join(topics[key] for key in sorted(topics)).encode("utf-8")
TEXT = "Grüße, naïve café!\nThe quick brown fox — twice.\n" * 40


def _all(corpus: Corpus) -> torch.Tensor:
    return torch.cat([corpus.train, corpus.val, corpus.test]).cpu()


def _bin_folder(tmp_path, splits: dict[str, list[int]], meta: dict | None = None, how="pkl"):
    for split, ids in splits.items():
        np.asarray(ids, dtype=np.uint16).tofile(tmp_path / f"{split}.bin")
    if meta is not None and how == "pkl":
        (tmp_path / "meta.pkl").write_bytes(pickle.dumps(meta))
    elif meta is not None:
        (tmp_path / "meta.json").write_text(json.dumps(meta))
    return str(tmp_path)


def test_the_pydoc_corpus_is_the_standard_librarys_topics():
    corpus = load_corpus()
    assert len(_all(corpus)) == len(PYDOC)
    assert corpus.digest == hashlib.sha256(PYDOC).hexdigest()
    assert corpus.source == f"pydoc_data.topics (Python {platform.python_version()})"
    assert corpus.vocab_size == 256
    assert corpus.train.dtype == torch.int64
    assert corpus.train.dim() == 1


def test_splits_are_contiguous_blocks_covering_every_token_in_order():
    corpus = load_corpus(val_fraction=0.1, test_fraction=0.05)
    n = len(PYDOC)
    assert torch.equal(_all(corpus), torch.tensor(list(PYDOC)))  # in order, none twice
    assert len(corpus.val) == round(0.1 * n)
    assert len(corpus.test) == round(0.05 * n)
    assert len(corpus.train) == n - len(corpus.val) - len(corpus.test)
    # The same split every load: nothing depends on a seed.
    again = load_corpus(val_fraction=0.1, test_fraction=0.05)
    assert torch.equal(again.val, corpus.val)


def test_char_level_numbers_the_sorted_distinct_characters():
    text = PYDOC.decode("utf-8")
    corpus = load_corpus(level="char")
    assert corpus.chars == "".join(sorted(set(text)))
    assert corpus.vocab_size == len(set(text))
    assert "".join(corpus.chars[i] for i in _all(corpus).tolist()) == text
    assert corpus.digest == hashlib.sha256(PYDOC).hexdigest()  # the bytes, whatever the level
    assert load_corpus(level="byte").chars is None


@pytest.mark.parametrize("device", DEVICES)
def test_random_windows_are_valid_shifted_and_seeded(device):
    tokens = torch.arange(12, device=device)  # each token is its own position
    context = 4
    generator = torch.Generator(device=device).manual_seed(0)
    starts = set()
    for _ in range(50):
        inputs, targets = random_windows(tokens, context, 16, generator)
        assert inputs.shape == targets.shape == (16, context)
        assert inputs.device == targets.device == tokens.device
        assert torch.equal(targets, inputs + 1)
        assert torch.equal(inputs, inputs[:, :1] + torch.arange(context, device=device))
        starts |= set(inputs[:, 0].tolist())
    assert starts == set(range(12 - context))  # every valid start, the last included

    def draw(seed):
        return random_windows(
            tokens, context, 16, torch.Generator(device=device).manual_seed(seed)
        )[0]

    assert torch.equal(draw(1), draw(1))
    assert not torch.equal(draw(1), draw(2))


def test_eval_windows_are_fixed_and_side_by_side():
    tokens = torch.arange(103)
    batches = list(eval_windows(tokens, 10, 4))
    assert [len(inputs) for inputs, _ in batches] == [4, 4, 2]  # (103 - 1) // 10 windows
    inputs = torch.cat([x for x, _ in batches])
    targets = torch.cat([y for _, y in batches])
    assert torch.equal(inputs.flatten(), torch.arange(100))  # no overlap, no gap
    assert torch.equal(targets, inputs + 1)
    again = list(eval_windows(tokens, 10, 4))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again, strict=True))
    capped = list(eval_windows(tokens, 10, 4, max_windows=5))
    assert [len(x) for x, _ in capped] == [4, 1]
    assert torch.equal(torch.cat([x for x, _ in capped]), inputs[:5])


def test_a_text_file_round_trips(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text(TEXT, encoding="utf-8")
    data = TEXT.encode("utf-8")
    corpus = load_corpus("text", root=str(path), val_fraction=0.1, test_fraction=0.1)
    assert torch.equal(_all(corpus), torch.tensor(list(data)))
    assert corpus.digest == hashlib.sha256(data).hexdigest()
    assert corpus.source == str(path)
    chars = load_corpus("text", root=str(path), level="char")
    assert chars.vocab_size == len(set(TEXT))
    assert "".join(chars.chars[i] for i in _all(chars).tolist()) == TEXT


def test_a_nanogpt_bin_folder_round_trips(tmp_path):
    train, val, test = [3, 300, 60000, 5, 9], [1, 2, 3], [4, 65535, 0]  # uint16 ids above 255
    root = _bin_folder(tmp_path, {"train": train, "val": val, "test": test}, {"vocab_size": 70000})
    corpus = load_corpus("bin", root=root)
    assert corpus.train.tolist() == train
    assert corpus.val.tolist() == val
    assert corpus.test.tolist() == test
    assert corpus.vocab_size == 70000  # meta.pkl's, not max id + 1
    assert corpus.train.dtype == torch.int64
    assert corpus.source == str(tmp_path)


def test_a_bin_folder_without_test_or_meta(tmp_path):
    root = _bin_folder(tmp_path, {"train": [3, 300, 7, 5], "val": [1, 2, 3]})
    corpus = load_corpus("bin", root=root)
    assert corpus.vocab_size == 301  # max id + 1
    assert corpus.test is corpus.val  # no test.bin: the test split is the val split
    with_json = _bin_folder(tmp_path, {}, {"vocab_size": 512}, how="json")
    assert load_corpus("bin", root=with_json).vocab_size == 512
    # The digest follows the ids.
    other = _bin_folder(tmp_path, {"val": [1, 2, 4]})
    assert load_corpus("bin", root=other).digest != corpus.digest


def test_unigram_entropy_is_the_entropy_of_the_frequencies():
    stream = [0, 0, 0, 1, 1, 2, 5, 5]
    counts = Counter(stream)
    expected = -sum(c / 8 * math.log(c / 8) for c in counts.values())
    assert unigram_entropy(torch.tensor(stream)) == pytest.approx(expected, rel=1e-12)
    assert unigram_entropy(torch.arange(7).repeat(3)) == pytest.approx(math.log(7))
    assert unigram_entropy(torch.zeros(5, dtype=torch.long)) == 0


def _refusal(key: str, **kwargs) -> str:
    with pytest.raises(WorkloadError) as caught:
        load_corpus(**kwargs)
    message = str(caught.value)
    assert message.startswith(f"{key}: "), message
    assert "\n" not in message
    return message


def test_each_bad_input_is_one_line_naming_its_key(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    short = tmp_path / "short.txt"
    short.write_text("abcdefghij")
    bad_utf8 = tmp_path / "latin1.txt"
    bad_utf8.write_bytes("café au lait".encode("latin-1"))
    no_val = tmp_path / "no_val"
    no_val.mkdir()
    _bin_folder(no_val, {"train": [1, 2, 3]})
    empty_val = tmp_path / "empty_val"
    empty_val.mkdir()
    _bin_folder(empty_val, {"train": [1, 2, 3], "val": []})
    small_meta = tmp_path / "small_meta"
    small_meta.mkdir()
    _bin_folder(small_meta, {"train": [1, 2, 300], "val": [1, 2]}, {"vocab_size": 256})

    assert "wiki" in _refusal("data.dataset", name="wiki")
    assert "word" in _refusal("data.dataset", level="word")
    assert "char" in _refusal("data.dataset", name="bin", root=str(no_val), level="char")
    assert "not set" in _refusal("data.root", name="text")
    assert "not a file" in _refusal("data.root", name="text", root=str(tmp_path / "gone.txt"))
    assert "empty" in _refusal("data.root", name="text", root=str(empty))
    assert "UTF-8" in _refusal("data.root", name="text", root=str(bad_utf8), level="char")
    assert "not a folder" in _refusal("data.root", name="bin", root=str(tmp_path / "none"))
    assert "val.bin" in _refusal("data.root", name="bin", root=str(no_val))
    assert "val split" in _refusal("data.root", name="bin", root=str(empty_val))
    assert "300" in _refusal("data.root", name="bin", root=str(small_meta))
    # 10 tokens, 10% val: one token, too short for a window of 1 and its target.
    assert "val split has 1" in _refusal(
        "data.dataset", name="text", root=str(short), val_fraction=0.1
    )
    assert "window of 30000" in _refusal("data.dataset", context=30_000)  # val: 23,314 tokens
    assert "1.5" in _refusal("data.val_fraction", val_fraction=1.5)
    assert "test_fraction" in _refusal("data.dataset", val_fraction=0.5, test_fraction=0.5)


def test_a_split_too_short_for_the_window_is_refused():
    with pytest.raises(WorkloadError, match=r"^data\.dataset: a split of 4 tokens") as caught:
        random_windows(torch.arange(4), 4, 2, torch.Generator().manual_seed(0))
    assert "\n" not in str(caught.value)
    with pytest.raises(WorkloadError, match="too short"):
        next(eval_windows(torch.arange(4), 4, 2))
    inputs, targets = random_windows(torch.arange(5), 4, 3, torch.Generator().manual_seed(0))
    assert torch.equal(inputs, torch.arange(4).repeat(3, 1))  # the one valid start
    assert torch.equal(targets, inputs + 1)
