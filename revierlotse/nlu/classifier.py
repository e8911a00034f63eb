"""A fast, accurate intent classifier for small German data sets.

Features: TF-IDF over words and over character n-grams (sublinear, word-bounded, so
typos and inflections still share most n-grams), plus any dense sentence features
earlier components added (here: the multilingual sentence encoder). Model: a linear
SVM, calibrated (sigmoid, k-fold) so the confidences mean something to the
FallbackClassifier. Trains in seconds on a 2-core machine; no TensorFlow.

Chosen by measurement on the held-out set (see docs/nlu.md).

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
from scipy.special import expit

logger = logging.getLogger(__name__)

# Only these libraries' types may be un-pickled from a model file (skops).
TRUSTED_TYPE_PREFIXES = ("sklearn.", "numpy.", "scipy.", "builtins.")
# Where a German question turns to its next part.
CLAUSE_BREAK = re.compile(r"[?;!]|,|\b(?:und|sowie|außerdem|ausserdem|zudem|plus|and)\b", re.IGNORECASE)
TOPICS = "topics"


class FastScorer:
    """The fitted model's arithmetic for one message at a time, without scikit-learn.

    Same numbers as `TfidfVectorizer.transform` (sublinear tf, idf, l2 per vectorizer),
    the weighted dense features, and `CalibratedClassifierCV(LinearSVC, sigmoid)
    .predict_proba` (per fold: decision values, sigmoid per class, normalised; then the
    mean over folds), as a few NumPy operations on all folds at once. Scikit-learn's
    input checks and sparse-matrix building cost ~3 ms per message here; this ~0.3 ms.
    Built when the model loads; `supports` says whether a fitted model has this shape.
    """

    @staticmethod
    def _estimator(fold) -> Any:
        # scikit-learn < 1.2 names it `base_estimator`, later versions `estimator`.
        return getattr(fold, "estimator", None) or getattr(fold, "base_estimator", None)

    def __init__(self, model: Dict[str, Any], dense_weight: float) -> None:
        self.vectorizers = []
        offset = 0
        for key in ("words", "chars"):
            vectorizer = model[key]
            self.vectorizers.append((vectorizer.build_analyzer(), vectorizer.vocabulary_, vectorizer.idf_, offset))
            offset += len(vectorizer.vocabulary_)
        self.dense_offset = offset
        self.dense_weight = dense_weight
        classifier = model["classifier"]
        self.classes = list(classifier.classes_)
        n = len(self.classes)
        folds = classifier.calibrated_classifiers_
        estimators = [self._estimator(f) for f in folds]
        # One row per (fold, class of that fold's estimator), in fold order.
        self.coef = np.vstack([e.coef_ for e in estimators])
        self.intercept = np.concatenate([e.intercept_ for e in estimators])
        self.a = np.concatenate([[c.a_ for c in f.calibrators] for f in folds])
        self.b = np.concatenate([[c.b_ for c in f.calibrators] for f in folds])
        position = {name: i for i, name in enumerate(self.classes)}
        self.column = np.concatenate([[position[c] for c in e.classes_] for e in estimators])
        self.fold = np.concatenate([[k] * len(e.classes_) for k, e in enumerate(estimators)])
        self.n_folds, self.n_classes = len(folds), n

    @staticmethod
    def supports(model: Dict[str, Any]) -> bool:
        classifier = model.get("classifier")
        folds = getattr(classifier, "calibrated_classifiers_", None)
        return bool(folds) and len(classifier.classes_) > 2 and all(
            getattr(f, "method", "sigmoid") == "sigmoid" and hasattr(FastScorer._estimator(f), "coef_")
            and len(FastScorer._estimator(f).classes_) > 2 for f in folds)

    def _sparse(self, text: str):
        indices, values = [], []
        for analyze, vocabulary, idf, offset in self.vectorizers:
            counts: Dict[int, int] = {}
            for feature in analyze(text):
                index = vocabulary.get(feature)
                if index is not None:
                    counts[index] = counts.get(index, 0) + 1
            if not counts:
                continue
            idx = np.fromiter(counts.keys(), dtype=np.int64, count=len(counts))
            tf = np.log(np.fromiter(counts.values(), dtype=np.float64, count=len(counts))) + 1.0
            weights = tf * idf[idx]
            norm = np.sqrt(np.dot(weights, weights))
            indices.append(idx + offset)
            values.append(weights / norm if norm > 0 else weights)
        if not indices:
            return np.empty(0, dtype=np.int64), np.empty(0)
        return np.concatenate(indices), np.concatenate(values)

    def probabilities(self, texts: List[str], dense: Optional[np.ndarray]) -> np.ndarray:
        expected = self.coef.shape[1] - self.dense_offset
        if (dense.shape[1] if dense is not None else 0) != expected:
            raise ValueError(f"the model expects {expected} dense features per text")  # as scikit-learn would
        out = np.empty((len(texts), self.n_classes))
        for row, text in enumerate(texts):
            idx, values = self._sparse(text)
            decision = self.coef[:, idx] @ values + self.intercept
            if expected:
                decision += self.coef[:, self.dense_offset:] @ (dense[row] * self.dense_weight)
            calibrated = expit(-(self.a * decision + self.b))
            proba = np.zeros((self.n_folds, self.n_classes))
            proba[self.fold, self.column] = calibrated
            total = proba.sum(axis=1, keepdims=True)
            proba = np.divide(proba, total, out=np.full_like(proba, 1.0 / self.n_classes), where=total != 0)
            proba[(1.0 < proba) & (proba <= 1.0 + 1e-5)] = 1.0
            out[row] = proba.sum(axis=0) / self.n_folds
        return out


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
        self.fast: Optional[FastScorer] = None

    @classmethod
    def create(cls, config, model_storage, resource, execution_context) -> "LinearIntentClassifier":
        return cls(config, model_storage, resource)

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        if float(config.get("C", 1.0)) <= 0:
            raise ValueError("LinearIntentClassifier: 'C' must be positive")

    # -- features ----------------------------------------------------------------
    @staticmethod
    def _inputs(messages: List[Message]):
        """Texts and their dense sentence features (None unless every message has them)."""
        texts = [m.get(TEXT) or "" for m in messages]
        dense = [m.get_dense_features(TEXT)[1] for m in messages]
        vectors = np.vstack([d.features for d in dense]) if dense and all(d is not None for d in dense) else None
        return texts, vectors

    def _matrix(self, texts: List[str], dense: Optional[np.ndarray]):
        parts = [self.model["words"].transform(texts), self.model["chars"].transform(texts)]
        if dense is not None:
            parts.append(csr_matrix(dense * float(self.config["dense_weight"])))
        return hstack(parts).tocsr()

    def _predict(self, texts: List[str], dense: Optional[np.ndarray]) -> np.ndarray:
        """Class probabilities per text (columns in `classifier.classes_` order)."""
        if self.fast is not None:
            return self.fast.probabilities(texts, dense)
        return self._probabilities(self._matrix(texts, dense))

    def _use_fast_scorer(self) -> None:
        supported = FastScorer.supports(self.model)
        self.fast = FastScorer(self.model, float(self.config["dense_weight"])) if supported else None

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
        self.model["classifier"] = classifier.fit(self._matrix(*self._inputs(examples)), np.asarray(labels))
        self._use_fast_scorer()
        self.persist()
        return self._resource

    # -- inference ---------------------------------------------------------------
    def process(self, messages: List[Message]) -> List[Message]:
        if not self.model or not messages:
            return messages
        names = list(self.model["classifier"].classes_)
        for message, row in zip(messages, self._predict(*self._inputs(messages))):
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
        for row in self._predict(clauses, dense):
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
                component._use_fast_scorer()
        except ValueError as exc:
            logger.warning("LinearIntentClassifier: no trained model loaded (%s)", exc)
        return component
