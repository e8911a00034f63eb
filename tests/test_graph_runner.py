"""The sequential graph runner gives Rasa's dask runner's results on the trained model."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tests.conftest import heldout_questions

TEXTS = heldout_questions()[::9] + ["", "😀", "/ask_salary", "Was verdient man, und welche Zertifikate zählen?"]


@pytest.fixture(scope="module")
def agent(model):
    from revierlotse import rasa36

    rasa36.apply()
    from rasa.core.agent import load_agent

    return asyncio.run(load_agent(model_path=str(model)))


def runners(agent):
    from rasa.engine.runner.dask import DaskGraphRunner

    from revierlotse.rasa36.graph_runner import SequentialGraphRunner

    served = agent.processor.graph_runner
    assert type(served) is SequentialGraphRunner  # the patch is what the server loads
    dask = DaskGraphRunner.__new__(DaskGraphRunner)
    dask.__dict__.update(served.__dict__)  # same instantiated nodes
    return served, dask


def comparable(value):
    """Parse results and predictions as plain data (arrays as lists, no event timestamps)."""
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items() if k != "timestamp"}
    if isinstance(value, (list, tuple)):
        return [comparable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(value, "as_dict"):
        return comparable(value.as_dict())
    if hasattr(value, "__dict__"):
        return comparable(vars(value))
    return value


def test_nlu_results_are_the_same(agent):
    from rasa.core.channels.channel import UserMessage

    served, dask = runners(agent)
    for text in TEXTS:
        results = [runner.run(inputs={"__message__": [UserMessage(text, message_id="m1")]}, targets=["run_RegexMessageHandler"])
                   for runner in (served, dask)]
        parsed = [r["run_RegexMessageHandler"] for r in results]
        assert len(parsed[0]) == len(parsed[1]) == 1
        assert comparable(parsed[0][0].as_dict()) == comparable(parsed[1][0].as_dict()), text
        assert parsed[0][0].get("intent")["name"]


def test_policy_predictions_are_the_same(agent):
    from rasa.shared.core.events import ActionExecuted, UserUttered
    from rasa.shared.core.trackers import DialogueStateTracker

    served, dask = runners(agent)
    tracker = DialogueStateTracker.from_events("graph-runner", [ActionExecuted("action_listen")],
                                               slots=agent.domain.slots)
    for text in TEXTS[:12]:
        parsed = asyncio.run(agent.parse_message(text))
        tracker.update(UserUttered(text, parsed["intent"], parsed["entities"], parse_data=parsed))
        predictions = [runner.run(inputs={"__tracker__": tracker}, targets=["select_prediction"])["select_prediction"]
                       for runner in (served, dask)]
        assert comparable(predictions[0]) == comparable(predictions[1]), text
        best = int(np.argmax(predictions[0].probabilities))
        tracker.update(ActionExecuted(agent.domain.action_names_or_texts[best]))
        tracker.update(ActionExecuted("action_listen"))


def test_errors_and_input_clashes_behave_as_with_dask(agent):
    from rasa.engine.exceptions import GraphRunError

    served, dask = runners(agent)
    for runner in (served, dask):
        with pytest.raises(GraphRunError, match="clashes with a node name"):
            runner.run(inputs={"__message__": "run_WhitespaceTokenizer0"}, targets=["run_RegexMessageHandler"])
    results = [runner.run(inputs={}, targets=["domain_provider"]) for runner in (served, dask)]
    assert comparable(results[0]) == comparable(results[1])
