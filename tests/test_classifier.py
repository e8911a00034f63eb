"""The intent classifier's fast scorer gives scikit-learn's numbers on the trained model."""

from __future__ import annotations

import tarfile

import numpy as np
import pytest
import yaml

from revierlotse.nlu.classifier import FastScorer, LinearIntentClassifier
from revierlotse.nlu.sentence_encoder import encode
from revierlotse.settings import PROJECT_ROOT
from tests.conftest import heldout_questions

ODD_TEXTS = ["", "???", "😀😀 hallo", "Gehalt " * 300, "x", "<b>Was verdient man?</b> ' OR 1=1 --"]


def classifier_config() -> dict:
    config = yaml.safe_load((PROJECT_ROOT / "config.yml").read_text(encoding="utf-8"))
    return next(c for c in config["pipeline"] if c["name"].endswith("LinearIntentClassifier"))


@pytest.fixture(scope="module")
def trained(model, tmp_path_factory) -> LinearIntentClassifier:
    """The classifier as the trained bot model holds it (scikit-learn objects)."""
    import skops.io as sio

    folder = tmp_path_factory.mktemp("model")
    with tarfile.open(model) as archive:
        archive.extractall(folder)
    path = next(folder.rglob("linear_intent_classifier.skops"))
    component = LinearIntentClassifier(classifier_config(), None, None)
    component.model = sio.load(path, trusted=sio.get_untrusted_types(file=path))
    return component


def test_fast_scorer_matches_scikit_learn(trained):
    texts = heldout_questions() + ODD_TEXTS
    dense = encode(texts)
    assert FastScorer.supports(trained.model)
    scorer = FastScorer(trained.model, float(trained.config["dense_weight"]))
    fast = scorer.probabilities(texts, dense)
    reference = trained._probabilities(trained._matrix(texts, dense))  # scikit-learn's own path
    assert fast.shape == reference.shape == (len(texts), len(trained.model["classifier"].classes_))
    np.testing.assert_allclose(fast, reference, rtol=0, atol=1e-9)
    assert (fast.argmax(axis=1) == reference.argmax(axis=1)).all()
    with pytest.raises(ValueError):  # like scikit-learn: the model was trained with sentence features
        scorer.probabilities(texts[:1], None)


def test_loaded_component_uses_the_fast_scorer_and_falls_back_without_calibration(trained):
    trained._use_fast_scorer()
    assert trained.fast is not None
    uncalibrated = LinearIntentClassifier(classifier_config(), None, None)
    fold = trained.model["classifier"].calibrated_classifiers_[0]
    uncalibrated.model = {**trained.model, "classifier": FastScorer._estimator(fold)}
    uncalibrated._use_fast_scorer()
    assert uncalibrated.fast is None  # a plain LinearSVC (tiny data): scikit-learn path
    text = "Was verdient ein IT-Manager?"
    probabilities = uncalibrated._predict([text], encode([text]))
    assert probabilities.shape[1] == len(trained.model["classifier"].classes_)
