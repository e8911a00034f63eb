"""Thin Rasa actions: read intent, entities and slots, ask the knowledge layer, reply.

No answer text lives here: facts and fixed replies come from the knowledge base
(data/knowledge/); the apology is read from the source file itself, so it works
while the database is down.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Sequence, Text, Tuple

from rasa_sdk import Action, Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher

from revierlotse.intents import payload_for_topic, topic_of_intent
from revierlotse.kb import Answer, KnowledgeBase
from revierlotse.kb.models import QUALIFIER_NAMES
from revierlotse.kb.source import apology_text
from revierlotse.settings import get_settings

logger = logging.getLogger(__name__)

HOME_PLACE = "duisburg"  # canonical value of every Duisburg/Ruhr place (data/nlu/entities.yml)
MAX_TOPICS_PER_MESSAGE = 3
CLARIFY_CANDIDATES = 3
CLARIFY_MIN_CONFIDENCE = 0.05


def knowledge_base() -> KnowledgeBase:
    return KnowledgeBase.from_url(get_settings().database_url)


def topic_buttons(topics: Sequence[Tuple[str, str]]) -> List[Dict[str, str]]:
    """Buttons whose payloads are plain intents (`/ask_<topic>`), valid in every channel."""
    return [{"title": label, "payload": payload_for_topic(key)} for key, label in topics]


def latest_entity(tracker: Tracker, name: str) -> Optional[str]:
    values = [e.get("value") for e in tracker.latest_message.get("entities", []) if e.get("entity") == name]
    return str(values[-1]) if values else None


def user_qualifiers(tracker: Tracker) -> Dict[str, Optional[str]]:
    return {name: tracker.get_slot(name) for name in QUALIFIER_NAMES}


class KnowledgeAction(Action, ABC):
    """Base of actions that read the knowledge base.

    The database work runs in a worker thread (it is synchronous SQLAlchemy); any
    failure becomes the German apology instead of silence or a stack trace.
    """

    @abstractmethod  # abstract, so rasa-sdk does not register the base class itself
    def respond(self, dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase) -> List[EventType]:
        """Reply through `dispatcher`; return the events to apply."""

    def _respond_from_one_version(self, dispatcher: CollectingDispatcher, tracker: Tracker) -> List[EventType]:
        return self.respond(dispatcher, tracker, knowledge_base().pinned())  # one hash check per message

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: Dict[Text, Any]
    ) -> List[EventType]:
        collected = CollectingDispatcher()
        try:
            events = await asyncio.to_thread(self._respond_from_one_version, collected, tracker)
        except Exception:  # noqa: BLE001 - the user must get an answer whatever failed
            logger.exception("action %s failed", self.name())
            dispatcher.utter_message(text=apology_text(get_settings().knowledge_dir))
            return []
        dispatcher.messages.extend(collected.messages)
        return events

    # -- shared replies ----------------------------------------------------------
    @staticmethod
    def say_answer(dispatcher: CollectingDispatcher, answer: Answer) -> List[EventType]:
        dispatcher.utter_message(text=answer.text)
        return [SlotSet("topic", answer.topic), SlotSet("shown_entries", list(answer.entry_ids))]

    @staticmethod
    def say_with_menu(dispatcher: CollectingDispatcher, kb: KnowledgeBase, *reply_keys: str, **values: str) -> None:
        text = "\n\n".join(kb.reply(key, **values) for key in reply_keys)
        dispatcher.utter_message(text=text, buttons=topic_buttons(kb.menu()))

    def answer_topic(self, dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase, topic: str,
                     new_qualifiers: Sequence[str] = ()) -> List[EventType]:
        """Answer `topic` for this user, or say honestly that a named place is not covered.

        `new_qualifiers` are the qualifier names the user just mentioned; if the answer
        has nothing specific for one of them, the reply says so before the general answer.
        """
        place = latest_entity(tracker, "place")
        if place and place.lower() != HOME_PLACE:
            self.say_with_menu(dispatcher, kb, "other_place", place=place[:1].upper() + place[1:])
            return [SlotSet("topic", topic)]
        qualifiers = user_qualifiers(tracker)
        answer = kb.answer(topic, **qualifiers)
        labels = kb.qualifier_values()
        uncovered = [
            labels[name][qualifiers[name]]
            for name in new_qualifiers
            if name not in answer.qualifiers and qualifiers.get(name) in labels.get(name, {})
        ]
        if uncovered:
            dispatcher.utter_message(text=kb.reply("qualifier_not_covered", facts=", ".join(uncovered)).strip())
        return self.say_answer(dispatcher, answer)


class ActionShowMenu(KnowledgeAction):
    """Greeting or "was kannst du?": a short intro and the topic menu as buttons."""

    def name(self) -> Text:
        return "action_show_menu"

    def respond(self, dispatcher, tracker, kb):
        key = "capabilities" if tracker.get_intent_of_latest_message() == "ask_capabilities" else "greeting"
        self.say_with_menu(dispatcher, kb, key)
        return []


class ActionAnswerTopic(KnowledgeAction):
    """A fact question: the topic is the intent name without its `ask_` prefix.

    A question naming several topics (NLU's `topics`) gets one answer per topic.
    """

    def name(self) -> Text:
        return "action_answer_topic"

    def respond(self, dispatcher, tracker, kb):
        intents = tracker.latest_message.get("topics") or [tracker.get_intent_of_latest_message()]
        topics = [t for t in dict.fromkeys(map(topic_of_intent, intents)) if kb.has_topic(t)]
        if not topics:
            self.say_with_menu(dispatcher, kb, "out_of_scope", "offer")
            return []
        events: List[EventType] = []
        for topic in topics[:MAX_TOPICS_PER_MESSAGE]:
            events += self.answer_topic(dispatcher, tracker, kb, topic)
        return events


class ActionInform(KnowledgeAction):
    """The user told us about themselves or narrowed the question: re-answer the topic."""

    def name(self) -> Text:
        return "action_inform"

    def respond(self, dispatcher, tracker, kb):
        topic = tracker.get_slot("topic")
        if topic and kb.has_topic(topic):
            mentioned = [n for n in QUALIFIER_NAMES if latest_entity(tracker, n)]
            return self.answer_topic(dispatcher, tracker, kb, topic, new_qualifiers=mentioned)
        labels = kb.qualifier_values()
        facts = [labels[name][value] for name, value in user_qualifiers(tracker).items() if value in labels.get(name, {})]
        if facts:
            self.say_with_menu(dispatcher, kb, "noted", "no_topic", facts=", ".join(facts))
        else:
            self.say_with_menu(dispatcher, kb, "no_topic")
        return []


class ActionMore(KnowledgeAction):
    """ "Erzähl mehr": the next detail on the current topic not shown yet."""

    def name(self) -> Text:
        return "action_more"

    def respond(self, dispatcher, tracker, kb):
        topic = tracker.get_slot("topic")
        if not topic or not kb.has_topic(topic):
            self.say_with_menu(dispatcher, kb, "no_topic")
            return []
        shown = list(tracker.get_slot("shown_entries") or [])
        detail = kb.more(topic, shown)
        if detail is None:
            self.say_with_menu(dispatcher, kb, "no_more_detail")
            return []
        dispatcher.utter_message(text=detail.text)
        return [SlotSet("shown_entries", shown + list(detail.entry_ids))]


class ActionForget(KnowledgeAction):
    """ "Vergiss das": drop everything the user told about themselves."""

    def name(self) -> Text:
        return "action_forget"

    def respond(self, dispatcher, tracker, kb):
        self.say_with_menu(dispatcher, kb, "forgotten")
        return [SlotSet(name, None) for name in (*QUALIFIER_NAMES, "topic", "shown_entries")]


class ActionOutOfScope(KnowledgeAction):
    """A question the article cannot answer: say so, never guess, offer the menu."""

    def name(self) -> Text:
        return "action_out_of_scope"

    def respond(self, dispatcher, tracker, kb):
        self.say_with_menu(dispatcher, kb, "out_of_scope", "offer")
        return []


class ActionClarify(KnowledgeAction):
    """First stage of the fallback: "Meintest du ...?" with the likeliest topics as buttons.

    With no plausible topic at all it goes straight to the honest fallback.
    """

    def name(self) -> Text:
        return "action_clarify"

    def respond(self, dispatcher, tracker, kb):
        labels = dict(kb.topics())
        candidates = [
            topic_of_intent(r.get("name"))
            for r in tracker.latest_message.get("intent_ranking", [])
            if topic_of_intent(r.get("name")) in labels and r.get("confidence", 0) >= CLARIFY_MIN_CONFIDENCE
        ][:CLARIFY_CANDIDATES]
        if not candidates:
            return ActionOutOfScope.respond(self, dispatcher, tracker, kb)
        buttons = topic_buttons([(t, labels[t]) for t in candidates])
        buttons.append({"title": kb.reply("clarify_other"), "payload": "/ask_capabilities"})
        dispatcher.utter_message(text=kb.reply("clarify"), buttons=buttons)
        return []


class ActionFallback(ActionOutOfScope):
    """Second miss in a row: the same honest answer with the menu as out of scope."""

    def name(self) -> Text:
        return "action_fallback"
