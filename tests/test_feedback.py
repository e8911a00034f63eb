"""Feedback on answers: 👍/👎 under every fact answer, the rating stored with the facts
shown, and after a 👎 the next typed line stored as what was missing.

Units run the actions with real rasa_sdk Trackers and the real knowledge base; the end
to end tests talk to the running bot over REST and read the rows the tracker store wrote.
"""

from __future__ import annotations

import asyncio
from typing import Any, Dict, List, Optional

import pytest
from rasa_sdk import Tracker
from rasa_sdk.executor import CollectingDispatcher

from actions import feedback
from revierlotse.channels.guard import clean_text, is_button_payload
from revierlotse.settings import get_settings
from tests.conftest import new_sender
from tests.stored_events import slot_values, stored_events

QUESTION = "Was verdient ein Einsteiger als IT Manager?"


@pytest.fixture
def knowledge_db(kb_url, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", kb_url)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def tracker(intent: str, text: str = "", slots: Optional[Dict[str, Any]] = None, events: List[dict] = (),
            latest_action: str = "action_listen") -> Tracker:
    message = {"intent": {"name": intent, "confidence": 1.0}, "entities": [], "text": text,
               "intent_ranking": [{"name": intent, "confidence": 1.0}]}
    return Tracker("test-user", slots or {}, message, list(events), False, None, {}, latest_action)


def answered(question: str = QUESTION, at: float = 100.0) -> List[dict]:
    """The events of a question and a fact answer with the rating buttons."""
    return [
        {"event": "user", "text": "Hallo", "timestamp": at - 50},
        {"event": "bot", "text": "Glück auf!", "data": {"buttons": [{"title": "Gehalt", "payload": "/ask_salary"}]},
         "timestamp": at - 49},
        {"event": "user", "text": question, "timestamp": at - 1},
        {"event": "bot", "text": "Für den Einstieg ...", "data": {"buttons": feedback.feedback_buttons()},
         "timestamp": at},
    ]


def run(action, t: Tracker):
    dispatcher = CollectingDispatcher()
    events = asyncio.run(action.run(dispatcher, t, {}))
    return "\n".join(m.get("text") or "" for m in dispatcher.messages), events


def slot_events(events) -> Dict[str, Any]:
    return {e["name"]: e["value"] for e in events if e.get("event") == "slot"}


# --- units ------------------------------------------------------------------------------

def test_feedback_buttons_are_thumbs_up_and_down_with_payloads_every_channel_passes():
    buttons = feedback.feedback_buttons()
    assert [b["title"] for b in buttons] == ["👍 Hilfreich", "👎 Nicht hilfreich"]
    for button in buttons:
        assert is_button_payload(button["payload"]) and clean_text(button["payload"]) == button["payload"]
        assert len(button["payload"].encode()) <= 64  # Telegram's callback data limit


def test_the_rated_answer_is_the_latest_one_with_rating_buttons_and_its_question():
    events = answered("Was verdient man?", at=100.0) + [
        {"event": "user", "text": "erzähl mehr", "timestamp": 120.0},
        {"event": "bot", "text": "Noch ein Detail ...", "timestamp": 121.0},  # no rating buttons
    ]
    assert feedback.rated_answer(tracker("feedback_unhelpful", events=events)) == {
        "question": "Was verdient man?", "answered_at": 100.0}
    assert feedback.rated_answer(tracker("feedback_unhelpful")) == {}


def test_thumbs_up_is_thanked_for_and_stored_with_topic_facts_and_question(knowledge_db):
    slots = {"topic": "salary", "shown_entries": ["salary-entry"]}
    text, events = run(feedback.ActionRateAnswer(), tracker("feedback_helpful", "/feedback_helpful", slots, answered()))
    assert text == "Danke für deine Rückmeldung!"
    assert slot_events(events) == {"answer_feedback": {
        "rating": "helpful", "topic": "salary", "facts": ["salary-entry"], "question": QUESTION, "answered_at": 100.0}}


def test_thumbs_down_is_stored_and_leaves_the_question_to_the_form(knowledge_db):
    slots = {"topic": "salary", "shown_entries": ["salary-overview"]}
    text, events = run(feedback.ActionRateAnswer(), tracker("feedback_unhelpful", "/feedback_unhelpful", slots, answered()))
    assert text == ""
    assert slot_events(events)["answer_feedback"]["rating"] == "unhelpful"
    ask, _ = run(feedback.ActionAskFeedbackComment(), tracker("feedback_unhelpful"))
    assert "in einer Zeile" in ask and "was dir gefehlt hat" in ask


def comment_turn(text: str, intent: str = "nlu_fallback", latest_action: str = "action_listen") -> Tracker:
    """What the form's validation gets: the tracker so far, then the form's own ActionExecuted
    (Rasa adds it to the copy it sends)."""
    events = answered() + [
        {"event": "action", "name": "action_rate_answer"},
        {"event": "action", "name": feedback.COMMENT_FORM},
        {"event": "action", "name": "action_listen"},
        {"event": "user", "text": text},
    ]
    if latest_action != "action_listen":
        events.append({"event": "action", "name": latest_action})
    events.append({"event": "action", "name": feedback.COMMENT_FORM})
    return tracker(intent, text, {"requested_slot": "feedback_comment"}, events, latest_action=feedback.COMMENT_FORM)


def extract(t: Tracker) -> Dict[str, Any]:
    return asyncio.run(feedback.ValidateFeedbackCommentForm().extract_feedback_comment(CollectingDispatcher(), t, {}))


def required(t: Tracker) -> List[str]:
    return asyncio.run(feedback.ValidateFeedbackCommentForm().required_slots(
        ["feedback_comment"], CollectingDispatcher(), t, {}))


def test_the_next_typed_line_is_the_comment_whatever_its_intent():
    assert extract(comment_turn("Mir fehlt,   was man in Teilzeit verdient")) == {
        "feedback_comment": "Mir fehlt, was man in Teilzeit verdient"}
    assert extract(comment_turn("und was verdient ein Senior?", "ask_salary")) == {
        "feedback_comment": "und was verdient ein Senior?"}
    assert len(extract(comment_turn("x" * 2000))["feedback_comment"]) == feedback.MAX_COMMENT_CHARS


def test_a_button_or_a_request_about_the_users_data_is_not_a_comment():
    assert extract(comment_turn("/ask_salary", "ask_salary")) == {}
    assert extract(comment_turn("/delete_data", "delete_data")) == {}
    assert extract(comment_turn("Lösch meine Daten", "delete_data")) == {}
    assert extract(comment_turn("Was speicherst du über mich?", "privacy_notice")) == {}


def test_the_offer_lapses_once_another_action_answered_instead():
    assert required(comment_turn("/ask_salary", "ask_salary")) == ["feedback_comment"]  # the turn itself
    assert required(comment_turn("/ask_salary", "ask_salary", latest_action="action_answer_topic")) == []
    # a new 👎 in its place asks again
    assert required(comment_turn("/feedback_unhelpful", "feedback_unhelpful", "action_rate_answer")) == [
        "feedback_comment"]


def test_a_comment_is_thanked_for_and_the_slot_cleared_for_the_next_one(knowledge_db):
    text, events = run(feedback.ActionFeedbackComment(), tracker("nlu_fallback", slots={"feedback_comment": "x"}))
    assert "Hinweis notiert" in text and slot_events(events) == {"feedback_comment": None}
    text, events = run(feedback.ActionFeedbackComment(), tracker("ask_salary", slots={"feedback_comment": None}))
    assert text == "" and events == []


# --- end to end over REST ----------------------------------------------------------------

def buttons(messages) -> Dict[str, str]:
    return {b["title"]: b["payload"] for m in messages for b in m.get("buttons", [])}


@pytest.mark.e2e
def test_every_fact_answer_offers_the_rating_buttons(bot):
    for question in (QUESTION, "Welche Fähigkeiten brauche ich?", "/ask_culture"):
        offered = buttons(bot.ask(question))
        assert offered.get("👍 Hilfreich") == "/feedback_helpful", question
        assert offered.get("👎 Nicht hilfreich") == "/feedback_unhelpful", question


@pytest.mark.e2e
def test_thumbs_up_is_stored_with_the_facts_shown_and_the_question(bot, kb_url):
    sender = new_sender()
    bot.ask(QUESTION, sender)
    assert bot.ask_text("/feedback_helpful", sender) == "Danke für deine Rückmeldung!"
    [rating] = slot_values(kb_url, sender, "answer_feedback")
    shown = slot_values(kb_url, sender, feedback.SHOWN_FACTS_SLOT)[-1]
    assert rating["rating"] == "helpful" and rating["topic"] == "salary"
    assert rating["facts"] == shown and rating["facts"]
    assert rating["question"] == QUESTION


@pytest.mark.e2e
def test_thumbs_down_asks_what_was_missing_and_keeps_the_next_line_as_comment(bot, kb_url):
    sender = new_sender()
    bot.ask(QUESTION, sender)
    offer = bot.ask_text("/feedback_unhelpful", sender)
    assert "in einer Zeile" in offer
    assert "Hinweis notiert" in bot.ask_text("Mir fehlt, was man in Teilzeit verdient", sender)
    [rating] = slot_values(kb_url, sender, "answer_feedback")
    assert rating["rating"] == "unhelpful" and rating["question"] == QUESTION
    assert slot_values(kb_url, sender, "feedback_comment") == ["Mir fehlt, was man in Teilzeit verdient", None]
    # The offer is over: the next question is answered as usual.
    assert "4.200 bis 5.200 €" in bot.ask_text("Was verdient ein Einsteiger?", sender)


@pytest.mark.e2e
def test_a_topic_button_instead_of_a_comment_is_answered_and_the_offer_lapses(bot, kb_url):
    sender = new_sender()
    bot.ask(QUESTION, sender)
    bot.ask("/feedback_unhelpful", sender)
    reply = bot.ask_text("/ask_culture", sender)
    assert "Abschnitt 3" in reply and "in einer Zeile" not in reply
    assert [v for v in slot_values(kb_url, sender, "feedback_comment") if v] == []
    # and the next typed line is an ordinary question again
    assert "4.200 bis 5.200 €" in bot.ask_text("Was verdient ein Einsteiger?", sender)


@pytest.mark.e2e
def test_erasure_instead_of_a_comment_erases(bot, kb_url):
    sender = new_sender()
    bot.ask(QUESTION, sender)
    bot.ask("/feedback_unhelpful", sender)
    assert bot.ask_text("Lösch meine Daten", sender).startswith("Ich habe unser Gespräch gelöscht")
    assert stored_events(kb_url, sender) == []
