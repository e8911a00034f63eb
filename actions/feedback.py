"""Feedback on answers: 👍/👎 under every fact answer, and one line on what was missing.

What is stored (as slot events in the tracker store, so erasure and the retention purge
remove it with the rest of the conversation, and `make report` reads it):

- `answer_feedback`: one record per rating, `{"rating": "helpful" | "unhelpful",
  "topic": ..., "facts": [ids of the knowledge entries shown], "question": the user
  message the rated answer replied to, "answered_at": that answer's timestamp}`.
- `feedback_comment`: after a 👎 the bot offers to note in one line what was missing;
  the next typed message is that comment (the form `feedback_comment_form`). A button
  press or a request about the user's data (deletion, privacy notice) in its place is
  not a comment: it is handled as usual and the offer lapses.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Text

from rasa_sdk import Tracker
from rasa_sdk.events import SlotSet
from rasa_sdk.forms import FormValidationAction

HELPFUL, UNHELPFUL = "helpful", "unhelpful"
RATING_OF_INTENT = {"feedback_helpful": HELPFUL, "feedback_unhelpful": UNHELPFUL}
FEEDBACK_SLOT = "answer_feedback"
COMMENT_SLOT = "feedback_comment"
COMMENT_FORM = "feedback_comment_form"
# The slot the answer actions fill with the ids of the knowledge entries they showed.
SHOWN_FACTS_SLOT = "shown_entries"
# Typed messages that are never taken as a comment: they ask about the user's own data.
NOT_A_COMMENT = {"delete_data", "privacy_notice"}
MAX_COMMENT_CHARS = 500

HELPFUL_TITLE = "👍 Hilfreich"
UNHELPFUL_TITLE = "👎 Nicht hilfreich"


def feedback_buttons() -> List[Dict[str, str]]:
    """The two rating buttons under a fact answer; plain payloads every channel passes."""
    return [
        {"title": HELPFUL_TITLE, "payload": "/feedback_helpful"},
        {"title": UNHELPFUL_TITLE, "payload": "/feedback_unhelpful"},
    ]


FEEDBACK_PAYLOADS = {button["payload"] for button in feedback_buttons()}


def shown_facts(tracker: Tracker) -> List[str]:
    """Ids of the knowledge entries the latest fact answer showed (the one place that
    knows which slot holds them)."""
    return [str(entry) for entry in tracker.get_slot(SHOWN_FACTS_SLOT) or []]


def _carries_feedback_buttons(event: Dict[str, Any]) -> bool:
    buttons = (event.get("data") or {}).get("buttons") or []
    return any(isinstance(b, dict) and b.get("payload") in FEEDBACK_PAYLOADS for b in buttons)


def rated_answer(tracker: Tracker) -> Dict[str, Any]:
    """The latest answer that offered the rating buttons: the question it replied to and
    its timestamp (empty when the current session has none)."""
    events = tracker.events or []
    for index in range(len(events) - 1, -1, -1):
        event = events[index]
        if event.get("event") == "bot" and _carries_feedback_buttons(event):
            question = next(
                (e.get("text") for e in reversed(events[:index]) if e.get("event") == "user"), None)
            return {"question": question, "answered_at": event.get("timestamp")}
    return {}


def action_before_form(tracker: Tracker) -> Optional[str]:
    """The action that ran last before the form was called now.

    Rasa hands the form's validation a copy of the tracker that ends in the form's own
    `ActionExecuted`; the one before it tells the turns apart: `action_listen` when the
    user just wrote, another action when the form resumes after it (or is activated).
    """
    names = [e.get("name") for e in tracker.events or [] if e.get("event") == "action"]
    while names and names[-1] in (COMMENT_FORM, "action_extract_slots"):
        names.pop()
    return names[-1] if names else None


def feedback_record(tracker: Tracker, rating: str) -> Dict[str, Any]:
    """What one rating stores: the rating, the rated answer's topic and facts, its question."""
    answer = rated_answer(tracker)
    return {
        "rating": rating,
        "topic": tracker.get_slot("topic"),
        "facts": shown_facts(tracker),
        "question": answer.get("question"),
        "answered_at": answer.get("answered_at"),
    }


# actions.actions imports feedback_buttons from here, so the base class is imported only
# now, after everything it needs is defined (actions/__init__.py imports this module first).
from actions.actions import KnowledgeAction  # noqa: E402


class ActionRateAnswer(KnowledgeAction):
    """👍 or 👎 on the latest answer: store the rating; 👍 is thanked for, and after 👎
    the form asks what was missing."""

    def name(self) -> Text:
        return "action_rate_answer"

    def respond(self, dispatcher, tracker, kb):
        rating = RATING_OF_INTENT.get(tracker.get_intent_of_latest_message(), UNHELPFUL)
        if rating == HELPFUL:
            dispatcher.utter_message(text=kb.reply("feedback_thanks"))
        return [SlotSet(FEEDBACK_SLOT, feedback_record(tracker, rating))]


class ActionAskFeedbackComment(KnowledgeAction):
    """The form's question after a 👎: what was missing, in one line."""

    def name(self) -> Text:
        return "action_ask_feedback_comment"

    def respond(self, dispatcher, tracker, kb):
        dispatcher.utter_message(text=kb.reply("feedback_ask_comment"))
        return []


class ValidateFeedbackCommentForm(FormValidationAction):
    """Takes the next typed message as the comment; ends the offer quietly when the
    conversation moved on (a button press or a data request came instead)."""

    def name(self) -> Text:
        return f"validate_{COMMENT_FORM}"

    async def required_slots(self, domain_slots, dispatcher, tracker, domain) -> List[Text]:
        just_rated = tracker.get_intent_of_latest_message() == "feedback_unhelpful"
        if action_before_form(tracker) != "action_listen" and not just_rated:
            return []  # back in the form after another action answered: the offer lapses
        return domain_slots

    async def extract_feedback_comment(self, dispatcher, tracker: Tracker, domain) -> Dict[Text, Any]:
        if tracker.get_slot("requested_slot") != COMMENT_SLOT or action_before_form(tracker) != "action_listen":
            return {}
        text = " ".join(str(tracker.latest_message.get("text") or "").split())
        # A leading slash survives the channel guard only on our own button payloads.
        if not text or text.startswith("/") or tracker.get_intent_of_latest_message() in NOT_A_COMMENT:
            return {}
        return {COMMENT_SLOT: text[:MAX_COMMENT_CHARS]}

    def validate_feedback_comment(self, value: Any, dispatcher, tracker, domain) -> Dict[Text, Any]:
        return {COMMENT_SLOT: value}


class ActionFeedbackComment(KnowledgeAction):
    """After the form: thank for the comment (the slot event is the stored comment) and
    clear the slot for the next 👎; nothing to say when the offer lapsed."""

    def name(self) -> Text:
        return "action_feedback_comment"

    def respond(self, dispatcher, tracker, kb):
        if not tracker.get_slot(COMMENT_SLOT):
            return []
        dispatcher.utter_message(text=kb.reply("feedback_comment_thanks"))
        return [SlotSet(COMMENT_SLOT, None)]
