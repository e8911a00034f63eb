"""Incremental dialogue states equal Rasa's own, prediction after prediction."""

from __future__ import annotations

import random

import pytest
from rasa.shared.core.domain import Domain
from rasa.shared.core.events import (
    ActionExecuted, ActiveLoop, BotUttered, Restarted, SlotSet, UserUttered, UserUtteranceReverted)
from rasa.shared.core.trackers import DialogueStateTracker

from revierlotse import rasa36
from revierlotse.rasa36.dialogue_states import IncrementalStates
from revierlotse.settings import PROJECT_ROOT

TEST_DOMAIN = """
version: "3.1"
intents: [greet, ask_salary, inform, deny]
entities: [level]
slots:
  level:
    type: categorical
    values: [entry, senior]
    mappings: [{type: from_entity, entity: level}]
  topic:
    type: text
    mappings: [{type: custom}]
  rule_only_flag:
    type: bool
    mappings: [{type: custom}]
forms:
  info_form:
    required_slots: [level]
actions: [action_answer_topic, action_show_menu]
"""
RULE_ONLY = {"slots": ["rule_only_flag"], "loops": ["info_form"]}


def original(domain, tracker, **flags):
    return rasa36.original("rasa.shared.core.domain", "Domain.states_for_tracker_history")(domain, tracker, **flags)


def sharing(states):
    """Which sub-states are the same object as an earlier one (Rasa's list shares some)."""
    first = {}
    return [{key: first.setdefault(id(sub), (i, key)) for key, sub in state.items()}
            for i, state in enumerate(states)]


def random_turn(rng: random.Random, step: int):
    intent = rng.choice(["greet", "ask_salary", "inform", "deny"])
    entities = [{"entity": "level", "value": rng.choice(["entry", "senior"])}] if intent == "inform" else []
    events = [UserUttered(f"text {step}", {"name": intent, "confidence": 0.9}, entities)]
    if entities:
        events.append(SlotSet("level", entities[0]["value"]))
    kind = rng.random()
    if kind < 0.15:
        events += [ActionExecuted("info_form"), ActiveLoop("info_form"), ActionExecuted("action_listen")]
    elif kind < 0.25:
        events += [ActionExecuted("info_form"), ActiveLoop(None), SlotSet("rule_only_flag", True),
                   ActionExecuted("action_answer_topic", hide_rule_turn=True), ActionExecuted("action_listen")]
    elif kind < 0.32:
        events += [UserUtteranceReverted()]
    elif kind < 0.35:
        events += [Restarted(), ActionExecuted("action_listen")]
    else:
        events += [ActionExecuted("action_answer_topic", hide_rule_turn=rng.random() < 0.3),
                   SlotSet("topic", "salary"), BotUttered("Antwort"), ActionExecuted("action_listen")]
    return events


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("flags", [
    {}, {"omit_unset_slots": True},
    {"ignore_rule_only_turns": True, "rule_only_data": RULE_ONLY},
    {"ignore_rule_only_turns": True, "rule_only_data": None, "omit_unset_slots": True},
])
def test_states_equal_rasas_as_the_conversation_grows(seed, flags):
    rasa36.apply()
    domain = Domain.from_yaml(TEST_DOMAIN)
    rng = random.Random(seed)
    incremental = IncrementalStates(size=4)
    tracker = DialogueStateTracker.from_events(f"user-{seed}", [ActionExecuted("action_listen")], slots=domain.slots)
    for step in range(25):
        for event in random_turn(rng, step):
            tracker.update(event)
            if rng.random() < 0.5:
                continue
            for _ in range(2):  # asked twice for the same tracker, as RulePolicy does
                ours, theirs = incremental.states(domain, tracker, **flags), original(domain, tracker, **flags)
                assert ours == theirs
                assert sharing(ours) == sharing(theirs)
                if ours and "user" in ours[-1]:  # callers edit the last state (text vs intent)
                    ours[-1]["user"].pop("intent", None)
        if rng.random() < 0.2:  # the tracker is loaded anew from the store: new event objects
            tracker = DialogueStateTracker.from_dict(tracker.sender_id, tracker.current_state(
                __import__("rasa.shared.core.trackers", fromlist=["EventVerbosity"]).EventVerbosity.ALL)["events"],
                domain.slots)
    assert incremental.states(domain, tracker, **flags) == original(domain, tracker, **flags)


def test_the_patch_serves_rasas_domain_method_and_keeps_conversations_apart():
    rasa36.apply()
    domain = Domain.load(PROJECT_ROOT / "domain.yml")
    a = DialogueStateTracker.from_events("a", [ActionExecuted("action_listen"),
                                               UserUttered("hi", {"name": "greet", "confidence": 1.0})],
                                         slots=domain.slots)
    b = DialogueStateTracker.from_events("b", [ActionExecuted("action_listen"),
                                               UserUttered("Gehalt?", {"name": "ask_salary", "confidence": 1.0})],
                                         slots=domain.slots)
    for tracker in (a, b, a, b):
        assert domain.states_for_tracker_history(tracker) == original(domain, tracker)
    assert a.past_states(domain) != b.past_states(domain)
