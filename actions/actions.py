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

from actions.feedback import feedback_buttons
from revierlotse.intents import payload_for_topic, topic_of_intent
from revierlotse.kb import QUALIFIER_NAMES, Answer, KnowledgeBase
from revierlotse.replies import apology_text
from revierlotse.settings import get_settings

logger = logging.getLogger(__name__)

# `rasa shell` turns buttons into a menu that must be answered before the next question:
# test dialogs there get no rating buttons.
UNRATED_CHANNELS = ("cmdline",)

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


def topic_prior(tracker: Tracker) -> Dict[str, float]:
    """The NLU's confidence per topic (intent `ask_<topic>`), for ranking facts."""
    prior: Dict[str, float] = {}
    for ranked in tracker.latest_message.get("intent_ranking") or []:
        topic = topic_of_intent(ranked.get("name"))
        if topic:
            prior[topic] = max(prior.get(topic, 0.0), float(ranked.get("confidence") or 0.0))
    return prior


def question_text(tracker: Tracker) -> str:
    """The user's words; empty for a button payload (`/ask_salary`), which names a topic."""
    text = str(tracker.latest_message.get("text") or "")
    return "" if text.startswith("/") else text


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
    def say_answer(dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase,
                   answer: Answer) -> List[EventType]:
        if answer.needs_menu:
            dispatcher.utter_message(text=answer.text, buttons=topic_buttons(kb.menu()))
        elif tracker.get_latest_input_channel() in UNRATED_CHANNELS:
            dispatcher.utter_message(text=answer.text)
        else:
            dispatcher.utter_message(text=answer.text, buttons=feedback_buttons())
        return [SlotSet("topic", answer.topic), SlotSet("shown_entries", [*answer.entry_ids, *answer.offered])]

    @staticmethod
    def say_with_menu(dispatcher: CollectingDispatcher, kb: KnowledgeBase, *reply_keys: str, **values: str) -> None:
        text = "\n\n".join(kb.reply(key, **values) for key in reply_keys)
        dispatcher.utter_message(text=text, buttons=topic_buttons(kb.menu()))

    def answer_question(self, tracker: Tracker, kb: KnowledgeBase, topics: Sequence[str] = ()) -> List[Answer]:
        """The knowledge layer's answers to the user's own words (one per topic asked)."""
        return kb.answer_question(
            question_text(tracker), topic_prior(tracker), user_qualifiers(tracker),
            place=latest_entity(tracker, "place"), previous_topic=tracker.get_slot("topic"), topics=topics,
            mentioned=[name for name in QUALIFIER_NAMES if latest_entity(tracker, name)],
        )

    def say_answers(self, dispatcher: CollectingDispatcher, tracker: Tracker, kb: KnowledgeBase,
                    answers: Sequence[Answer]) -> List[EventType]:
        events: List[EventType] = []
        for answer in answers:
            events += self.say_answer(dispatcher, tracker, kb, answer)
        return events


class ActionShowMenu(KnowledgeAction):
    """Greeting or "was kannst du?": a short intro and the topic menu as buttons."""

    def name(self) -> Text:
        return "action_show_menu"

    def respond(self, dispatcher, tracker, kb):
        key = "capabilities" if tracker.get_intent_of_latest_message() == "ask_capabilities" else "greeting"
        self.say_with_menu(dispatcher, kb, key)
        return []


class ActionAnswerTopic(KnowledgeAction):
    """A fact question: the facts that answer it, or an honest "not covered" first.

    A button payload (`/ask_salary`) gets the topic's overview; a question that NLU
    found to ask about several topics (`topics`) can get one answer per topic.
    """

    def name(self) -> Text:
        return "action_answer_topic"

    def respond(self, dispatcher, tracker, kb):
        intents = tracker.latest_message.get("topics") or [tracker.get_intent_of_latest_message()]
        topics = [t for t in dict.fromkeys(map(topic_of_intent, intents)) if kb.has_topic(t)]
        if not question_text(tracker):
            if not topics:
                self.say_with_menu(dispatcher, kb, "out_of_scope", "offer")
                return []
            return self.say_answer(dispatcher, tracker, kb, kb.answer_topic(topics[0], **user_qualifiers(tracker)))
        several = topics if len(topics) > 1 else ()  # NLU found topics in separate clauses
        return self.say_answers(dispatcher, tracker, kb, self.answer_question(tracker, kb, several))


class ActionInform(KnowledgeAction):
    """The user told us about themselves or narrowed the question ("und als Einsteiger?").

    With a topic under way, the facts of that topic meant for what they just told
    lead; a topic with none for it says so before its general answer.
    """

    def name(self) -> Text:
        return "action_inform"

    def respond(self, dispatcher, tracker, kb):
        topic = tracker.get_slot("topic")
        mentioned = [n for n in QUALIFIER_NAMES if latest_entity(tracker, n)]
        place = latest_entity(tracker, "place")
        if topic and kb.has_topic(topic) and mentioned and not place:
            qualifiers = user_qualifiers(tracker)
            text = question_text(tracker)
            asked = self.answer_question(tracker, kb) if text and not kb.is_elliptic(text) else []
            if asked and asked[0].topic != topic and asked[0].entry_ids:  # the question moved on
                return self.say_answers(dispatcher, tracker, kb, asked)
            answer = kb.follow_up(topic, mentioned, **qualifiers)
            if answer is None:
                labels = kb.qualifier_values()
                told = [labels[n][qualifiers[n]] for n in mentioned if qualifiers.get(n) in labels.get(n, {})]
                if told:
                    dispatcher.utter_message(text=kb.reply("qualifier_not_covered", facts=", ".join(told)).strip())
                answer = kb.answer_topic(topic, **qualifiers)
            return self.say_answer(dispatcher, tracker, kb, answer)
        if topic and kb.has_topic(topic) or place or question_text(tracker) and not mentioned:
            return self.say_answers(dispatcher, tracker, kb, self.answer_question(tracker, kb))
        labels = kb.qualifier_values()
        facts = [labels[name][value] for name, value in user_qualifiers(tracker).items() if value in labels.get(name, {})]
        if facts:
            self.say_with_menu(dispatcher, kb, "noted", "no_topic", facts=", ".join(facts))
        else:
            self.say_with_menu(dispatcher, kb, "no_topic")
        return []


class ActionMore(KnowledgeAction):
    """ "Erzähl mehr", "warum?": the fact on the current topic, not shown yet, that best
    continues from the last answer."""

    def name(self) -> Text:
        return "action_more"

    def respond(self, dispatcher, tracker, kb):
        topic = tracker.get_slot("topic")
        if not topic or not kb.has_topic(topic):
            self.say_with_menu(dispatcher, kb, "no_topic")
            return []
        if question_text(tracker):  # "wie viel mehr genau?" asks for what the article lacks
            asked = self.answer_question(tracker, kb)
            if asked[0].uncovered not in (None, "unknown"):
                return self.say_answers(dispatcher, tracker, kb, asked)
        shown = list(tracker.get_slot("shown_entries") or [])
        detail = kb.more(topic, shown, question_text(tracker))
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
    """NLU found the question outside the article: say so, and say what exactly is not
    covered where the knowledge base recognises it. A question the facts answer
    clearly (a fact scores above the answer threshold without any topic prior) is
    answered after all."""

    def name(self) -> Text:
        return "action_out_of_scope"

    def respond(self, dispatcher, tracker, kb):
        if question_text(tracker):
            answers = self.answer_question(tracker, kb)
            if answers[0].uncovered != "unknown":
                return self.say_answers(dispatcher, tracker, kb, answers)
        self.say_with_menu(dispatcher, kb, "out_of_scope", "offer")
        return []


class ActionClarify(KnowledgeAction):
    """First stage of the fallback. A fact that answers the question clearly, or a
    recognised "not covered", is said; otherwise "Meintest du ...?" with the likeliest
    topics as buttons, or the honest fallback when no topic is plausible at all.
    """

    def name(self) -> Text:
        return "action_clarify"

    def respond(self, dispatcher, tracker, kb):
        if question_text(tracker):
            answers = self.answer_question(tracker, kb)
            if answers[0].uncovered != "unknown":
                return self.say_answers(dispatcher, tracker, kb, answers)
        labels = dict(kb.topics())
        candidates = [
            topic_of_intent(r.get("name"))
            for r in tracker.latest_message.get("intent_ranking", [])
            if topic_of_intent(r.get("name")) in labels and r.get("confidence", 0) >= CLARIFY_MIN_CONFIDENCE
        ][:CLARIFY_CANDIDATES]
        if not candidates:
            self.say_with_menu(dispatcher, kb, "out_of_scope", "offer")
            return []
        buttons = topic_buttons([(t, labels[t]) for t in candidates])
        buttons.append({"title": kb.reply("clarify_other"), "payload": "/ask_capabilities"})
        dispatcher.utter_message(text=kb.reply("clarify"), buttons=buttons)
        return []


class ActionFallback(ActionOutOfScope):
    """Second miss in a row: the same honest answer with the menu as out of scope."""

    def name(self) -> Text:
        return "action_fallback"
