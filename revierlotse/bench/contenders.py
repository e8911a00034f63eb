"""The benchmark's contenders and their fresh training.

Three contenders: our configuration served as we deploy it, Rasa's stock configuration
on Rasa as shipped, and the stock configuration served like ours (to tell what the
configuration does from what the serving does).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, Iterator, Optional

from revierlotse.settings import PROJECT_ROOT

STOCK_CONFIG = "revierlotse/bench/stock-config.yml"
RESULTS = PROJECT_ROOT / "results"
LOGS = PROJECT_ROOT / "artifacts" / "bench"


@dataclass(frozen=True)
class Contender:
    label: str  # key in the results
    config: str  # config path relative to the project root
    our_serving: bool  # rasa36 patches + one replica per core (Redis locks); else Rasa as shipped
    title: str  # column header


CONTENDERS = (
    Contender("revierlotse", "config.yml", True, "revierlotse"),
    Contender("stock", STOCK_CONFIG, False, "stock (Rasa as shipped)"),
    Contender("stock-our-serving", STOCK_CONFIG, True, "stock config, our serving"),
)
BASELINES = ("stock", "stock-our-serving")  # ratios: revierlotse against each

# `python -m revierlotse.launch rasa ...` without revierlotse.rasa36: Rasa as shipped.
UNPATCHED_RASA = (
    "import sys; from revierlotse.launch import export_environment; export_environment(); "
    "from rasa.__main__ import main; sys.argv = ['rasa', *sys.argv[1:]]; main()"
)
def without_patches(rasa) -> None:
    """Make a Rasa server `Service` run Rasa as shipped (no revierlotse.rasa36)."""
    rasa.argv = [rasa.argv[0], "-c", UNPATCHED_RASA, *rasa.argv[rasa.argv.index("rasa") + 1:]]


@contextlib.contextmanager
def output_to(log_path: Path) -> Iterator[None]:
    """Send this process's and its children's stdout/stderr (fds 1, 2) to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log_path, "ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _earlier_training(model: Path) -> Optional[Dict[str, Any]]:
    """Training figures of this very model from an earlier run (results/bench-*.json)."""
    for path in sorted(RESULTS.glob("bench-2*.json"), reverse=True):
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        for result in run.get("results", {}).values():
            if result.get("model") == str(model) and result.get("training_s") is not None:
                return {"model": str(model), "training_s": result["training_s"],
                        "training": f"fresh, empty cache, measured in the run of {run.get('started')}"}
    return None


def fresh_training(contender: Contender, reuse: bool) -> Dict[str, Any]:
    """Train `contender` from scratch (empty Rasa cache) into models/bench-<label>-<fingerprint>.

    The name differs from the bot's own model, so the benchmark never replaces it.
    With `reuse`, an existing bench model is used and its training time is not measured.
    """
    from revierlotse.model import model_path, train

    name = "bench-stock" if contender.config == STOCK_CONFIG else f"bench-{contender.label}"
    target = model_path(contender.config, name)
    if reuse and target.exists():
        earlier = _earlier_training(target)
        if earlier:
            return earlier
        return {"model": str(target), "training_s": None, "training": "reused (not measured)"}
    with tempfile.TemporaryDirectory(prefix="rasa-cache-") as cache, \
            output_to(LOGS / f"train-{contender.label}.log"):
        previous = os.environ.get("RASA_CACHE_DIRECTORY")
        os.environ["RASA_CACHE_DIRECTORY"] = cache
        try:
            started = time.monotonic()
            train(contender.config, name)
            seconds = time.monotonic() - started
        finally:
            if previous is None:
                os.environ.pop("RASA_CACHE_DIRECTORY", None)
            else:
                os.environ["RASA_CACHE_DIRECTORY"] = previous
    return {"model": str(target), "training_s": round(seconds, 1), "training": "fresh, empty cache"}
