"""Text corpora as device-resident token streams, for language models.

A corpus is three 1-D int64 tensors of token ids (train, val, test) that live on the training
device, as :mod:`trainables.data`'s datasets do: a batch is ``batch_size`` windows cut at offsets
drawn from the trial's own generator, with one indexing op. No DataLoader, no per-window Python.

The embedded default, ``pydoc``, is the English text of Python's language-reference topics
(``pydoc_data.topics``, in the standard library): no download, the same bytes on every machine
with the same Python version. Its sha256 changes with that version, which is why every corpus
carries a ``digest`` for a study to log.
"""

from __future__ import annotations

import hashlib
import json
import pickle
import platform
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from trainables.plugins import WorkloadError

CORPUS_NAMES = ("pydoc", "text", "bin")
LEVELS = ("byte", "char")
KEY = "data.dataset"  # the study keys a corpus's problems are reported under
ROOT_KEY = "data.root"
_CHUNK = 1 << 24  # tokens (or bytes) handled at a time when reading a .bin file


# eq=False: tensors compare element-wise, so a generated __eq__ would raise, not answer.
@dataclass(frozen=True, eq=False)
class Corpus:
    """Token ids on the device: ``train``, ``val`` and ``test`` (1-D int64) in ``[0,
    vocab_size)``. ``digest`` is the sha256 (hex) of the corpus's bytes, ``source`` where they
    came from. ``chars``: at the char level, the vocabulary (token ``i`` is ``chars[i]``);
    None otherwise (a byte token is its byte value)."""

    train: Tensor
    val: Tensor
    test: Tensor
    vocab_size: int
    digest: str
    source: str
    chars: str | None = None


def load_corpus(
    name: str = "pydoc",
    root: str | None = None,
    level: str = "byte",
    val_fraction: float = 0.05,
    test_fraction: float = 0.05,
    device: str | torch.device = "cpu",
    context: int = 1,
) -> Corpus:
    """Load corpus ``name`` onto ``device``.

    - ``pydoc``: the embedded text, ``pydoc_data.topics.topics`` joined in sorted key order
      with blank lines, UTF-8 (``root`` is not used).
    - ``text``: the UTF-8 text file at ``root`` (a file path).
    - ``bin``: a nanoGPT-style folder at ``root``: ``train.bin`` and ``val.bin`` of uint16 token
      ids, and ``test.bin`` if there is one; without it the test split *is* the val split.
      The vocabulary is the largest id plus one, unless ``meta.json`` or nanoGPT's ``meta.pkl``
      (a pickled dict: only load a folder you trust) gives a ``vocab_size``. ``level`` and the
      fractions do not apply (the files are the splits; ``level="char"`` is refused). Digest:
      sha256 over each file's name, size and bytes, train, val, then test.

    ``level``: ``"byte"`` (a token is a byte, vocabulary 256) or ``"char"`` (the sorted
    distinct characters of the whole text, so a corpus always maps the same way). A text
    corpus is cut into contiguous blocks, never depending on a seed: the first ``1 - val -
    test`` of its tokens train, then val, then test. Every split must hold one window of
    ``context`` tokens and its next-token target (``context + 1`` tokens).

    Any problem (an unknown name or level, a missing or empty file, a split too short) is a
    one-line :class:`~trainables.plugins.WorkloadError` naming ``data.dataset`` or
    ``data.root``.
    """
    if name not in CORPUS_NAMES:
        raise WorkloadError(
            f"{KEY}: {name!r} is not a corpus: expected one of {', '.join(CORPUS_NAMES)}"
        )
    if level not in LEVELS:
        raise WorkloadError(f"{KEY}: {name}: level {level!r} is not one of {', '.join(LEVELS)}")
    device = torch.device(device)
    if name == "bin":
        if level != "byte":
            raise WorkloadError(f"{KEY}: bin: holds token ids already; level {level!r} is for text")
        corpus = _bin_corpus(root, device)
    else:
        if name == "pydoc":
            data, source = _pydoc_bytes(), f"pydoc_data.topics (Python {platform.python_version()})"
        else:
            path = _root(root, "a UTF-8 text file")
            if not path.is_file():
                raise WorkloadError(f"{ROOT_KEY}: {path} is not a file (the text corpus)")
            data, source = path.read_bytes(), str(path)
        if not data:
            raise WorkloadError(f"{ROOT_KEY}: {source} is empty")
        tokens, vocab_size, chars = _tokenise(data, level, source)
        train, val, test = _split(tokens, val_fraction, test_fraction)
        # Copies: each split owns a storage of its own size (a view would carry, and pickle,
        # the whole corpus).
        corpus = Corpus(
            train=train.to(device, copy=True),
            val=val.to(device, copy=True),
            test=test.to(device, copy=True),
            vocab_size=vocab_size,
            digest=hashlib.sha256(data).hexdigest(),
            source=source,
            chars=chars,
        )
    for split in ("train", "val", "test"):
        found = len(getattr(corpus, split))
        if found < context + 1:
            where = ROOT_KEY if name == "bin" else KEY
            raise WorkloadError(
                f"{where}: {corpus.source}: the {split} split has {found} tokens, too few for "
                f"one window of {context} and its target ({context + 1})"
            )
    return corpus


def _pydoc_bytes() -> bytes:
    from pydoc_data.topics import topics

    return "\n\n".join(topics[key] for key in sorted(topics)).encode("utf-8")


def _root(root: str | None, what: str) -> Path:
    if root is None:
        raise WorkloadError(f"{ROOT_KEY}: not set; this corpus needs {what}")
    return Path(root).expanduser().resolve()


def _tokenise(data: bytes, level: str, source: str) -> tuple[Tensor, int, str | None]:
    """int64 token ids, the vocabulary size and (char level) the vocabulary."""
    if level == "byte":
        return torch.from_numpy(np.frombuffer(data, dtype=np.uint8).astype(np.int64)), 256, None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise WorkloadError(f"{ROOT_KEY}: {source} is not UTF-8 text: {error}") from None
    # Code points in one array: np.unique sorts them (Python's order of characters) and
    # numbers each character by its place in that order.
    points = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32)
    distinct, ids = np.unique(points, return_inverse=True)
    chars = "".join(map(chr, distinct.tolist()))
    return torch.from_numpy(ids.astype(np.int64).reshape(-1)), len(chars), chars


def _split(tokens: Tensor, val_fraction: float, test_fraction: float) -> tuple[Tensor, ...]:
    """Contiguous train, val, test blocks, in that order."""
    if not 0 <= val_fraction < 1:
        raise WorkloadError(f"data.val_fraction: must lie in [0, 1), got {val_fraction}")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise WorkloadError(
            f"{KEY}: test_fraction {test_fraction} must lie in [0, 1) and leave a train split "
            f"beside val_fraction {val_fraction}"
        )
    n = len(tokens)
    num_val, num_test = round(n * val_fraction), round(n * test_fraction)
    num_train = n - num_val - num_test
    return tokens[:num_train], tokens[num_train : n - num_test], tokens[n - num_test :]


def _bin_corpus(root: str | None, device: torch.device) -> Corpus:
    folder = _root(root, "a folder with train.bin and val.bin (nanoGPT's layout)")
    if not folder.is_dir():
        raise WorkloadError(f"{ROOT_KEY}: {folder} is not a folder (train.bin, val.bin)")
    files = {split: folder / f"{split}.bin" for split in ("train", "val", "test")}
    for split in ("train", "val"):
        if not files[split].is_file():
            raise WorkloadError(f"{ROOT_KEY}: {folder} has no {split}.bin (uint16 token ids)")
    if not files["test"].is_file():
        del files["test"]
    digest = hashlib.sha256()
    splits = {split: _read_ids(path, digest, device) for split, path in files.items()}
    top = max((int(ids.max()) for ids in splits.values() if len(ids)), default=-1)
    vocab_size = _meta_vocab_size(folder)
    if vocab_size is None:
        vocab_size = top + 1
    elif vocab_size <= top:
        raise WorkloadError(
            f"{ROOT_KEY}: {folder}: the meta file's vocab_size {vocab_size} is too small for "
            f"token id {top}"
        )
    return Corpus(
        train=splits["train"],
        val=splits["val"],
        test=splits.get("test", splits["val"]),
        vocab_size=vocab_size,
        digest=digest.hexdigest(),
        source=str(folder),
    )


def _read_ids(path: Path, digest: hashlib._Hash, device: torch.device) -> Tensor:
    """The uint16 ids of ``path`` as int64 on ``device``, copied a chunk at a time (host
    memory stays small for a corpus bigger than it); their bytes go into ``digest``."""
    size = path.stat().st_size
    if size % 2:
        raise WorkloadError(f"{ROOT_KEY}: {path} has {size} bytes: not uint16 token ids")
    digest.update(f"{path.name}:{size}\n".encode())
    tokens = torch.empty(size // 2, dtype=torch.int64, device=device)
    if size == 0:  # np.memmap refuses an empty file
        return tokens
    ids = np.memmap(path, dtype=np.uint16, mode="r")
    for start in range(0, len(ids), _CHUNK):
        chunk = np.asarray(ids[start : start + _CHUNK])
        digest.update(memoryview(chunk))
        tokens[start : start + len(chunk)] = torch.from_numpy(chunk.astype(np.int64))
    return tokens


def _meta_vocab_size(folder: Path) -> int | None:
    """``vocab_size`` from ``meta.json`` or nanoGPT's ``meta.pkl``, if either is there."""
    for file, read in (("meta.json", json.loads), ("meta.pkl", pickle.loads)):
        path = folder / file
        if not path.is_file():
            continue
        try:
            meta = read(path.read_bytes())
        except Exception as error:  # any damage to the file is the same refusal
            raise WorkloadError(
                f"{ROOT_KEY}: {path} cannot be read: {type(error).__name__}"
            ) from None
        size = meta.get("vocab_size") if isinstance(meta, dict) else None
        if not isinstance(size, int) or isinstance(size, bool) or size < 1:
            raise WorkloadError(f"{ROOT_KEY}: {path} has no positive integer vocab_size")
        return size
    return None


def random_windows(
    tokens: Tensor, context: int, batch_size: int, generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """``batch_size`` windows of ``context`` tokens, ``[batch_size, context]``, and their
    targets (the same windows shifted by one token). Offsets are drawn uniformly over every
    valid start from ``generator``, which lives on the tokens' device and alone decides them."""
    _check_window(tokens, context)
    starts = torch.randint(
        0, len(tokens) - context, (batch_size,), generator=generator, device=tokens.device
    )
    index = starts[:, None] + torch.arange(context, device=tokens.device)
    return tokens[index], tokens[index + 1]


def eval_windows(
    tokens: Tensor, context: int, batch_size: int, max_windows: int | None = None
) -> Iterator[tuple[Tensor, Tensor]]:
    """Fixed windows from the start of the split, side by side (each token is a target once),
    at most ``max_windows``, in batches of ``batch_size`` (the last may be smaller): the same
    windows every call."""
    _check_window(tokens, context)
    count = (len(tokens) - 1) // context
    if max_windows is not None:
        count = min(count, max_windows)
    for first in range(0, count, batch_size):
        last = min(first + batch_size, count)
        span = tokens[first * context : last * context + 1]  # views: nothing is copied
        yield span[:-1].view(-1, context), span[1:].view(-1, context)


def _check_window(tokens: Tensor, context: int) -> None:
    if len(tokens) < context + 1:
        raise WorkloadError(
            f"{KEY}: a split of {len(tokens)} tokens is too short for one window of {context} "
            f"and its target ({context + 1})"
        )


def unigram_entropy(tokens: Tensor) -> float:
    """The entropy (nats) of the token frequencies: the loss of a model that knows only how
    often each token occurs, the baseline a language model must beat."""
    if len(tokens) == 0:
        raise ValueError("unigram_entropy of no tokens")
    counts = torch.bincount(tokens.flatten()).double()
    p = counts[counts > 0] / len(tokens)
    return float(-(p * p.log()).sum())
