"""A fast, accurate intent classifier for small German data sets.

Features: TF-IDF over words and over character n-grams (sublinear, word-bounded, so
typos and inflections still share most n-grams), plus any dense sentence features
earlier components added (here: the multilingual sentence encoder). Model: a linear
SVM, calibrated (sigmoid, k-fold) so the confidences mean something to the
FallbackClassifier. Trains in seconds on a 2-core machine; no TensorFlow.

Chosen by measurement on the held-out set (see README, "NLU quality").
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.classifiers.classifier import IntentClassifier
from rasa.shared.nlu.constants import INTENT, TEXT
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData
from scipy.sparse import csr_matrix, hstack

logger = logging.getLogger(__name__)

# Only these libraries' types may be un-pickled from a model file (skops).
TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.INTENT_CLASSIFIER, is_trainable=True)
class LinearIntentClassifier(GraphComponent, IntentClassifier):
    """TF-IDF (words + char n-grams) + dense sentence features -> calibrated linear SVM."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {
            "C": 1.0,
            "char_min_ngram": 2,
            "char_max_ngram": 5,
            "dense_weight": 1.0,
            "calibration_folds": 3,
            "ranking_length": 10,
            "random_state": 42,
        }

    def __init__(self, config: Dict[Text, Any], model_storage: ModelStorage, resource: Resource) -> None:
        self.config = {**self.get_default_config(), **config}
        self._model_storage = model_storage
        self._resource = resource
        self.model: Dict[str, Any] = {}

    @classmethod
    def create(cls, config, model_storage, resource, execution_context) -> "LinearIntentClassifier":
        return cls(config, model_storage, resource)

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        if float(config.get("C", 1.0)) <= 0:
            raise ValueError("LinearIntentClassifier: 'C' must be positive")

    # -- features ----------------------------------------------------------------
    def _features(self, messages: List[Message]):
        texts = [m.get(TEXT) or "" for m in messages]
        parts = [self.model["words"].transform(texts), self.model["chars"].transform(texts)]
        dense = [m.get_dense_features(TEXT)[1] for m in messages]
        if all(d is not None for d in dense) and dense:
            parts.append(csr_matrix(np.vstack([d.features for d in dense]) * float(self.config["dense_weight"])))
        return hstack(parts).tocsr()

    # -- training ----------------------------------------------------------------
    def train(self, training_data: TrainingData) -> Resource:
        from sklearn.calibration import CalibratedClassifierCV
        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.svm import LinearSVC

        examples = [e for e in training_data.intent_examples if e.get(INTENT) and e.get(TEXT)]
        if not examples:
            logger.debug("LinearIntentClassifier: no intent examples, nothing trained")
            return self._resource
        texts = [e.get(TEXT) for e in examples]
        labels = [e.get(INTENT) for e in examples]
        self.model = {
            "words": TfidfVectorizer(lowercase=True, sublinear_tf=True, token_pattern=r"(?u)\b\w+\b").fit(texts),
            "chars": TfidfVectorizer(
                analyzer="char_wb", lowercase=True, sublinear_tf=True,
                ngram_range=(int(self.config["char_min_ngram"]), int(self.config["char_max_ngram"])),
            ).fit(texts),
        }
        folds = min(int(self.config["calibration_folds"]), min(labels.count(label) for label in set(labels)))
        svm = LinearSVC(C=float(self.config["C"]), random_state=int(self.config["random_state"]))
        classifier = CalibratedClassifierCV(svm, cv=folds, method="sigmoid") if folds >= 2 else svm
        self.model["classifier"] = classifier.fit(self._features(examples), np.asarray(labels))
        self.persist()
        return self._resource

    # -- inference ---------------------------------------------------------------
    def process(self, messages: List[Message]) -> List[Message]:
        if not self.model or not messages:
            return messages
        classifier = self.model["classifier"]
        X = self._features(messages)
        if hasattr(classifier, "predict_proba"):
            probabilities = classifier.predict_proba(X)
        else:  # one intent class too small to calibrate: softmax of the margins
            margins = classifier.decision_function(X)
            exp = np.exp(margins - margins.max(axis=1, keepdims=True))
            probabilities = exp / exp.sum(axis=1, keepdims=True)
        names = list(classifier.classes_)
        for message, row in zip(messages, probabilities):
            order = np.argsort(-row)
            ranking = [{"name": names[i], "confidence": float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking[: int(self.config["ranking_length"])], add_to_output=True)
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        return training_data

    # -- storage -----------------------------------------------------------------
    def persist(self) -> None:
        import skops.io as sio

        with self._model_storage.write_to(self._resource) as model_dir:
            sio.dump(self.model, model_dir / "linear_intent_classifier.skops")

    @classmethod
    def load(cls, config, model_storage, resource, execution_context, **kwargs: Any) -> "LinearIntentClassifier":
        import skops.io as sio

        component = cls(config, model_storage, resource)
        try:
            with model_storage.read_from(resource) as model_dir:
                path = model_dir / "linear_intent_classifier.skops"
                untrusted = sio.get_untrusted_types(file=path)
                foreign = [t for t in untrusted if not t.startswith(TRUSTED_TYPE_PREFIXES)]
                if foreign:
                    raise ValueError(f"refusing to load untrusted types: {foreign}")
                component.model = sio.load(path, trusted=untrusted)
        except ValueError as exc:
            logger.warning("LinearIntentClassifier: no trained model loaded (%s)", exc)
        return component
