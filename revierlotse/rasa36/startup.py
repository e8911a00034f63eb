"""Start-up speed-ups: done before anything imports Rasa (and with it TensorFlow).

They change no Rasa attribute, only what gets imported when: the server and each
training start seconds earlier, with the same modules doing the same work.
"""

from __future__ import annotations

import sys
from typing import List


class RefuseJax:
    """Import hook: `jax` is not there for this process."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in {"jax", "jaxlib"}:
            raise ImportError(f"{fullname} is not used by Revierlotse (not imported, to start faster)")
        return None


def keep_tensorflow_from_importing_jax() -> List[object]:
    """Start without importing JAX, which nothing here uses.

    TensorFlow 2.12 (imported by Rasa even for a pipeline without TensorFlow parts)
    tries `from jax import xla_computation` for a TF-Lite conversion helper and carries
    on without it on ImportError. JAX is installed (a TensorFlow dependency), so that
    import alone cost 2.5-4 s of every server start and training. Returns the hooks it
    added (for `undo`).
    """
    if any(isinstance(finder, RefuseJax) for finder in sys.meta_path):
        return []
    hook = RefuseJax()
    sys.meta_path.insert(0, hook)
    return [hook]


def import_skops_before_tensorflow() -> None:
    """Import skops (the classifier's safe model format) while few modules are loaded.

    On import, skops finds the module of each NumPy/SciPy ufunc by scanning every module
    in `sys.modules` (pickle's `whichmodule`). After Rasa has imported TensorFlow, that is
    ~1.2 million attribute lookups: 7-15 s of the server's start-up and of each training
    on two cores, against ~3 s (mostly importing scikit-learn, which Rasa does anyway)
    before it. Same trusted-type lists either way.
    """
    import skops.io  # noqa: F401


def prepare() -> List[object]:
    """Both start-up speed-ups; returns what `undo` takes back."""
    hooks = keep_tensorflow_from_importing_jax()
    import_skops_before_tensorflow()
    return hooks


def undo(hooks: List[object]) -> None:
    for hook in hooks:
        if hook in sys.meta_path:
            sys.meta_path.remove(hook)
