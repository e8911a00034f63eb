"""What `make install` leaves behind that a fresh machine's start-up depends on."""

import importlib.util
import os

import pytest


@pytest.mark.parametrize("module", ["tensorflow", "rasa.core.agent", "sklearn", "sqlalchemy"])
def test_installed_packages_come_with_compiled_bytecode(module):
    # Under PYTHONDONTWRITEBYTECODE Python never writes .pyc files itself: without the
    # ones `uv pip install --compile-bytecode` writes, each Rasa start compiles
    # TensorFlow and Rasa from source (25 s to ready instead of 9-10 s).
    spec = importlib.util.find_spec(module)
    assert spec is not None and spec.origin
    cached = importlib.util.cache_from_source(spec.origin)
    assert os.path.exists(cached), f"{module}: no {cached}; run `make install` (uv --compile-bytecode)"
