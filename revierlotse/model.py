"""The trained model, cached by a fingerprint of everything training reads.

`python -m revierlotse.model` prints the model path, training first only if no model
for the current training data exists. The knowledge base is not part of the
fingerprint: answers change without retraining.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterable, List

import yaml

from revierlotse.settings import PROJECT_ROOT

TRAINING_DATA = ("data/nlu", "data/dialogue")
TRAINING_FILES = ("config.yml", "domain.yml")
# Code that ends up inside the model graph of a config naming one of its components
# (`revierlotse.nlu....`): a change must retrain that config's model, and only that one.
TRAINING_CODE = ("revierlotse/nlu",)
MODELS_DIR = PROJECT_ROOT / "models"


def uses_own_components(config_file: Path) -> bool:
    """Whether the pipeline or policies of `config_file` name a revierlotse component."""
    config = yaml.safe_load(config_file.read_text(encoding="utf-8")) or {}
    names = [str(part.get("name", "")) for key in ("pipeline", "policies") for part in config.get(key) or []
             if isinstance(part, dict)]
    return any(name.startswith("revierlotse.") for name in names)


def _inputs(root: Path, config: str = "config.yml") -> List[Path]:
    files: List[Path] = [root / f for f in TRAINING_FILES]
    code = TRAINING_CODE if uses_own_components(root / config) else ()
    for folder in (*TRAINING_DATA, *code):
        files += sorted(p for p in (root / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return files


def fingerprint(root: Path = PROJECT_ROOT, config: str = "config.yml") -> str:
    digest = hashlib.sha256()
    for path in _inputs(root, config):
        rel = path.relative_to(root).as_posix()
        if rel == "config.yml":
            path = root / config
        digest.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def model_path(config: str = "config.yml", name: str = "revierlotse") -> Path:
    return MODELS_DIR / f"{name}-{fingerprint(config=config)}.tar.gz"


def train(config: str = "config.yml", name: str = "revierlotse", extra: Iterable[str] = ()) -> Path:
    """Train with `config` into the cached path; returns the path. Prints the time taken."""
    target = model_path(config, name)
    started = time.monotonic()
    cmd = [
        sys.executable, "-m", "revierlotse.launch", "rasa", "train",
        "--config", config, "--domain", "domain.yml", "--data", *TRAINING_DATA,
        "--out", str(MODELS_DIR), "--fixed-model-name", target.name[: -len(".tar.gz")], *extra,
    ]
    subprocess.run(cmd, cwd=PROJECT_ROOT, check=True)
    print(f"trained {target.name} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return target


def ensure_model(config: str = "config.yml", name: str = "revierlotse") -> Path:
    target = model_path(config, name)
    return target if target.exists() else train(config, name)


if __name__ == "__main__":
    print(ensure_model())
