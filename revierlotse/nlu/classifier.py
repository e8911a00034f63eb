"""A fast, accurate intent classifier for small German data sets.

Features: TF-IDF over words and over character n-grams (sublinear, word-bounded, so
typos and inflections still share most n-grams), plus any dense sentence features
earlier components added (here: the multilingual sentence encoder). Model: a linear
SVM, calibrated (sigmoid, k-fold) so the confidences mean something to the
FallbackClassifier. Trains in seconds on a 2-core machine; no TensorFlow.

Chosen by measurement on the held-out set (see README, "NLU quality").

A question may name two topics ("Was verdient man und welche Weiterbildung lohnt
sich?"). The classifier then also splits the text into clauses, classifies each, and
when two or more clauses confidently name different topic intents it adds them, in
order, as `topics` to the parse result; the intent stays the whole text's best guess.
"""

from __future__ import annotations

import logging
import re
from typing import Any, Dict, List, Optional, Text

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
# Where a German question turns to its next part.
CLAUSE_BREAK = re.compile(r"[?;!]|,|\b(?:und|sowie|außerdem|ausserdem|zudem|plus|and)\b", re.IGNORECASE)
TOPICS = "topics"


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
            # Multi-topic questions: intents with this prefix count as topics, and a
            # clause must reach this confidence to add its topic.
            "topic_intent_prefix": "ask_",
            "clause_confidence": 0.5,
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
        dense = [m.get_dense_features(TEXT)[1] for m in messages]
        vectors = np.vstack([d.features for d in dense]) if dense and all(d is not None for d in dense) else None
        return self._matrix(texts, vectors)

    def _matrix(self, texts: List[str], dense: Optional[np.ndarray]):
        parts = [self.model["words"].transform(texts), self.model["chars"].transform(texts)]
        if dense is not None:
            parts.append(csr_matrix(dense * float(self.config["dense_weight"])))
        return hstack(parts).tocsr()

    def _probabilities(self, X) -> np.ndarray:
        classifier = self.model["classifier"]
        if hasattr(classifier, "predict_proba"):
            return classifier.predict_proba(X)
        margins = classifier.decision_function(X)  # one class too small to calibrate
        exp = np.exp(margins - margins.max(axis=1, keepdims=True))
        return exp / exp.sum(axis=1, keepdims=True)

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
        names = list(self.model["classifier"].classes_)
        for message, row in zip(messages, self._probabilities(self._features(messages))):
            order = np.argsort(-row)
            ranking = [{"name": names[i], "confidence": float(row[i])} for i in order]
            message.set(INTENT, ranking[0], add_to_output=True)
            message.set("intent_ranking", ranking[: int(self.config["ranking_length"])], add_to_output=True)
            topics = self._clause_topics(message)
            if len(topics) > 1:
                message.set(TOPICS, topics, add_to_output=True)
        return messages

    def _clause_topics(self, message: Message) -> List[str]:
        """Topic intents named by separate clauses of the text, in order, without repeats."""
        clauses = [c.strip() for c in CLAUSE_BREAK.split(message.get(TEXT) or "")]
        clauses = [c for c in clauses if len(c) >= 4]
        if len(clauses) < 2:
            return []
        dense = None
        if message.get_dense_features(TEXT)[1] is not None:
            from revierlotse.nlu.sentence_encoder import encode

            dense = encode(clauses)
        names = list(self.model["classifier"].classes_)
        prefix, threshold = self.config["topic_intent_prefix"], float(self.config["clause_confidence"])
        topics: List[str] = []
        for row in self._probabilities(self._matrix(clauses, dense)):
            best = int(np.argmax(row))
            if names[best].startswith(prefix) and row[best] >= threshold and names[best] not in topics:
                topics.append(names[best])
        return topics

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
