"""Rasa's own checks: data validation, test stories, NLU accuracy on held-out sets."""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from revierlotse.evaluation.nlu import HELDOUT_SETS, evaluate
from revierlotse.settings import PROJECT_ROOT
from tests.conftest import ARTIFACTS

MIN_ACCURACY = 0.90


def rasa(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "revierlotse.launch", "rasa", *args],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=900,
    )


def test_training_data_validates_without_warnings():
    result = rasa("data", "validate", "--fail-on-warnings", "--config", "config.yml", "--domain", "domain.yml",
                  "--data", "data/nlu", "data/dialogue")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_test_stories_have_no_prediction_errors(model):
    out = ARTIFACTS / "rasa-test"
    result = rasa("test", "core", "--model", str(model), "--stories", "tests/stories",
                  "--fail-on-prediction-errors", "--out", str(out))
    failed = out / "failed_test_stories.yml"
    detail = failed.read_text(encoding="utf-8")[-3000:] if failed.exists() else result.stderr[-3000:]
    assert result.returncode == 0, detail


@pytest.mark.parametrize("heldout", HELDOUT_SETS, ids=lambda p: p.stem)
def test_intent_accuracy_on_held_out_set(model, heldout):
    logging.disable(logging.WARNING)
    try:
        ours, baseline = evaluate(model, heldout)
    finally:
        logging.disable(logging.NOTSET)
    print(f"{ours.name}: accuracy {ours.accuracy:.3f}, macro F1 {ours.macro_f1:.3f}; "
          f"{baseline.name}: accuracy {baseline.accuracy:.3f}")
    assert ours.n >= 150
    assert ours.accuracy >= MIN_ACCURACY, ours.errors
