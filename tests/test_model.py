"""The model cache key: what training reads, and only that."""

import shutil
from pathlib import Path

from revierlotse.model import fingerprint, uses_own_components
from revierlotse.settings import PROJECT_ROOT

STOCK = "revierlotse/bench/stock-config.yml"


def copy_of_training_inputs(tmp_path: Path) -> Path:
    root = tmp_path / "project"
    for folder in ("data/nlu", "data/dialogue", "revierlotse/nlu", "revierlotse/bench"):
        shutil.copytree(PROJECT_ROOT / folder, root / folder, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("config.yml", "domain.yml"):
        shutil.copy(PROJECT_ROOT / name, root / name)
    return root


def test_own_components_are_recognised():
    assert uses_own_components(PROJECT_ROOT / "config.yml")
    assert not uses_own_components(PROJECT_ROOT / STOCK)


def test_changed_own_component_retrains_our_model_only(tmp_path):
    root = copy_of_training_inputs(tmp_path)
    ours, stock = fingerprint(root), fingerprint(root, STOCK)
    with open(root / "revierlotse/nlu/classifier.py", "a", encoding="utf-8") as f:
        f.write("\n# changed\n")
    assert fingerprint(root) != ours
    assert fingerprint(root, STOCK) == stock


def test_changed_training_data_retrains_both(tmp_path):
    root = copy_of_training_inputs(tmp_path)
    ours, stock = fingerprint(root), fingerprint(root, STOCK)
    nlu_file = sorted((root / "data/nlu").rglob("*.yml"))[0]
    nlu_file.write_text(nlu_file.read_text(encoding="utf-8") + "\n", encoding="utf-8")
    assert fingerprint(root) != ours
    assert fingerprint(root, STOCK) != stock
