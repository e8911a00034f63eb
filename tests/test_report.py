"""Operator report: figures computed from a real tracker store seeded through Rasa's own API.

The seeded conversations (times in Europe/Berlin, winter time):

    02.03.  A web       Hallo | Was verdient ein Einsteiger? | Welche Skills brauche ich?
            B telegram  Was verdient man so? | Wie wird das Wetter morgen? (out of scope)
            C rest      Wie ist das Gehalt in München (fallback) | Schreib mir an <e-mail> (fallback)
    03.03.  D web       Wie wird das Wetter heute? | Wie wird das Wetter in Duisburg? (both out of scope)
                        | Gehalt in München? (ask_salary at 0.2: below the 0.3 threshold)
            E cmdline   /ask_salary | Was lerne ich in Weiterbildungen?
    04.03.  nothing
    05.03.  F web       (sender of A, new session) Ruf mich an: <phone> (fallback) | Danke
            G web       session start only, no user message: not a conversation
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import uuid
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from rasa.core.tracker_store import SQLTrackerStore
from rasa.shared.core.events import ActionExecuted, BotUttered, SessionStarted, SlotSet, UserUttered
from rasa.shared.core.trackers import DialogueStateTracker

from revierlotse.report.__main__ import load_report, write_report
from revierlotse.report.conversations import open_engine, read_conversations
from revierlotse.report.figures import fallback_threshold
from revierlotse.report.unanswered import group_questions, mask_personal_data
from revierlotse.settings import PROJECT_ROOT, load_settings
from tests.conftest import new_sender

BERLIN = ZoneInfo("Europe/Berlin")
EMAIL = "max.mustermann@example.org"
PHONE = "0203 1234567"
SENDERS = {name: f"sender-{name}-{uuid.uuid4().hex[:10]}" for name in "ABCDEG"}
SENDERS["F"] = SENDERS["A"]


def at(day: int, hour: int, minute: int = 0) -> float:
    return datetime(2026, 3, day, hour, minute, tzinfo=BERLIN).timestamp()


def user(text: str, intent: str, confidence: float, channel: str, ts: float) -> UserUttered:
    parse_data = {
        "intent": {"name": intent, "confidence": confidence},
        "intent_ranking": [{"name": intent, "confidence": confidence}],
        "entities": [],
    }
    return UserUttered(text, intent=parse_data["intent"], parse_data=parse_data, input_channel=channel, timestamp=ts)


def conversation(channel: str, start: float, turns) -> list:
    """Session start, then for each (text, intent, confidence): user message, bot reply, listen."""
    events = [
        ActionExecuted("action_session_start", timestamp=start),
        SessionStarted(timestamp=start),
        ActionExecuted("action_listen", timestamp=start),
    ]
    for i, (text, intent, confidence) in enumerate(turns):
        ts = start + 60 * i + 1
        events += [
            user(text, intent, confidence, channel, ts),
            ActionExecuted("action_answer", timestamp=ts + 1),
            BotUttered("Antwort", timestamp=ts + 1),
            ActionExecuted("action_listen", timestamp=ts + 2),
        ]
    return events


SEED = [
    ("A", conversation("socketio", at(2, 9), [
        ("Hallo", "greet", 0.95),
        ("Was verdient ein Einsteiger?", "ask_salary", 0.9),
        ("Welche Skills brauche ich?", "ask_skills", 0.8),
    ])),
    ("B", conversation("telegram", at(2, 12), [
        ("Was verdient man so?", "ask_salary", 0.85),
        ("Wie wird das Wetter morgen?", "out_of_scope", 0.9),
    ])),
    ("C", conversation("rest", at(2, 18), [
        ("Wie ist das Gehalt in München", "nlu_fallback", 0.3),
        (f"Schreib mir an {EMAIL}", "nlu_fallback", 0.3),
    ])),
    ("D", conversation("socketio", at(3, 10), [
        ("Wie wird das Wetter heute?", "out_of_scope", 0.7),
        ("Wie wird das Wetter in Duisburg?", "out_of_scope", 0.8),
        ("Gehalt in München?", "ask_salary", 0.2),
    ])),
    ("E", conversation("cmdline", at(3, 15), [
        ("/ask_salary", "ask_salary", 1.0),
        ("Was lerne ich in Weiterbildungen?", "ask_training", 0.7),
    ])),
    # Same sender as A, a new session three days later: a conversation of its own.
    ("F", conversation("socketio", at(5, 11), [
        (f"Ruf mich an: {PHONE}", "nlu_fallback", 0.3),
        ("Danke", "thank", 0.9),
    ])),
    ("G", conversation("socketio", at(5, 12), [])),
]


def seed(store: SQLTrackerStore) -> None:
    """Save the trackers the way Rasa does, one save per conversation session."""
    events_so_far = {}
    for name, events in SEED:
        sender = SENDERS[name]
        events_so_far[sender] = events_so_far.get(sender, []) + events
        asyncio.run(store.save(DialogueStateTracker.from_events(sender, events_so_far[sender])))


@pytest.fixture(scope="module")
def tracker_db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("report") / "tracker.db"
    store = SQLTrackerStore(dialect="sqlite", db=str(path))
    seed(store)
    store.engine.dispose()
    return f"sqlite:///{path}"


def settings_for(url: str):
    return load_settings({"DATABASE_URL": url, "KNOWLEDGE_DIR": str(PROJECT_ROOT / "data" / "knowledge")})


@pytest.fixture(scope="module")
def report(tracker_db):
    return load_report(settings_for(tracker_db))


def test_the_seeded_store_holds_what_rasa_wrote(tracker_db):
    engine = open_engine(tracker_db)
    conversations = list(read_conversations(engine))
    engine.dispose()
    # G has only session rows and no message, so it yields no conversation.
    assert sorted(len(c.user_messages) for c in conversations) == [2, 2, 2, 2, 3, 3]


def test_conversations_and_messages_per_day_include_empty_days(report):
    assert (report.first_day, report.last_day) == ("2026-03-02", "2026-03-05")
    per_day = [(d.day, d.conversations, d.user_messages, d.bot_messages) for d in report.days]
    assert per_day == [
        ("2026-03-02", 3, 7, 7),
        ("2026-03-03", 2, 5, 5),
        ("2026-03-04", 0, 0, 0),
        ("2026-03-05", 1, 2, 2),
    ]
    assert (report.conversations, report.user_messages, report.bot_messages) == (6, 14, 14)


def test_channel_shares_count_conversations_by_their_first_channel(report):
    assert [(s.label, s.count) for s in report.channels] == [("Web", 3), ("Telegram", 1), ("Shell/REST", 2)]
    assert [round(s.share, 4) for s in report.channels] == [0.5, round(1 / 6, 4), round(2 / 6, 4)]


def test_top_topics_use_the_knowledge_base_labels_and_skip_low_confidence(report):
    # "Gehalt in München?" (ask_salary at 0.2) is below the threshold: unanswered, not a topic.
    assert [(s.key, s.label, s.count) for s in report.topics] == [
        ("salary", "Gehalt", 3),
        ("skills", "Fähigkeiten", 1),
        ("training", "Weiterbildung", 1),
    ]


def test_fallback_and_out_of_scope_rates_overall_and_per_day(report):
    assert fallback_threshold() == report.fallback_threshold == 0.3
    assert (report.not_understood, report.out_of_scope) == (4, 3)
    assert report.not_understood_rate == pytest.approx(4 / 14)
    assert report.out_of_scope_rate == pytest.approx(3 / 14)
    rates = [(d.not_understood_rate, d.out_of_scope_rate) for d in report.days]
    assert rates == [pytest.approx((2 / 7, 1 / 7)), (0.2, 0.4), (0.0, 0.0), (0.5, 0.0)]


def test_average_conversation_length(report):
    assert report.avg_user_messages == pytest.approx(14 / 6)
    # Each conversation lasts from its first event to its last bot reply: 60 s per extra turn + 1 s.
    turns = [3, 2, 2, 3, 2, 2]
    assert report.avg_duration_minutes == pytest.approx(sum(((t - 1) * 60 + 1) / 60 for t in turns) / 6)


def test_unanswered_questions_are_grouped_counted_and_masked(report):
    groups = [(g.count, g.text, sorted(t for t, _ in g.variants), g.reasons) for g in report.unanswered]
    assert groups == [
        (3, "Wie wird das Wetter heute?",
         ["Wie wird das Wetter in Duisburg?", "Wie wird das Wetter morgen?"], {"out_of_scope": 3}),
        (2, "Gehalt in München?", ["Wie ist das Gehalt in München"], {"fallback": 1, "low_confidence": 1}),
        (1, "Ruf mich an: [Telefon]", [], {"fallback": 1}),
        (1, "Schreib mir an [E-Mail]", [], {"fallback": 1}),
    ]


def test_html_report_has_the_figures_and_no_personal_data(report, tmp_path):
    html_path = write_report(report, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    data = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert html.count("data:image/png;base64,") == 4  # activity, channels, topics, unanswered rate
    assert "<html lang=\"de\">" in html and "02.03.2026 bis 05.03.2026" in html
    assert "Gehalt" in html and "„Wie wird das Wetter heute?“" in html and "[E-Mail]" in html
    assert "28,6 %" in html  # not understood overall: 4 of 14
    for text in (html, data):
        for sender in SENDERS.values():
            assert sender not in text
        assert EMAIL not in text and PHONE not in text and "1234567" not in text
    assert json.loads(data)["channels"][0] == {"key": "Web", "label": "Web", "count": 3, "share": 0.5}


def test_date_range_limits_every_figure(tracker_db):
    report = load_report(settings_for(tracker_db), date(2026, 3, 3), date(2026, 3, 4))
    assert [(d.day, d.conversations, d.user_messages) for d in report.days] == [
        ("2026-03-03", 2, 5),
        ("2026-03-04", 0, 0),
    ]
    assert [(s.label, s.count) for s in report.channels] == [("Web", 1), ("Shell/REST", 1)]
    assert [(s.key, s.count) for s in report.topics] == [("salary", 1), ("training", 1)]
    assert [(g.count, g.text) for g in report.unanswered] == [
        (2, "Wie wird das Wetter heute?"),
        (1, "Gehalt in München?"),
    ]
    # A range with no conversation is "nothing to report", not an error.
    assert load_report(settings_for(tracker_db), date(2026, 4, 1), date(2026, 4, 30)) is None


def test_personal_data_masking():
    assert mask_personal_data("Mail an a.b-c@firma.de oder +49 (0)203 123 45 67") == "Mail an [E-Mail] oder [Telefon]"
    assert mask_personal_data("siehe https://example.org/x?y=1") == "siehe [Link]"
    assert mask_personal_data("IBAN DE89 3704 0044 0532 0130 00") == "IBAN [IBAN]"
    # Salary figures and years stay readable.
    assert mask_personal_data("4.200 bis 5.200 € im Jahr 2026?") == "4.200 bis 5.200 € im Jahr 2026?"


def test_unrelated_questions_stay_apart():
    groups = group_questions(
        (q, "out_of_scope")
        for q in ["Bestell mir Pizza", "Kannst du mir eine Pizza bestellen?", "Wer gewinnt die Bundesliga?", "asdf"]
    )
    assert sorted(g.count for g in groups) == [1, 1, 2]


def run_cli(url: str, *args: str, out) -> subprocess.CompletedProcess:
    env = {**os.environ, "DATABASE_URL": url, "RASA_TELEMETRY_ENABLED": "false"}
    return subprocess.run(
        [sys.executable, "-m", "revierlotse.report", "--out", str(out), *args],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )


def test_cli_writes_the_report_for_a_range(tracker_db, tmp_path):
    result = run_cli(tracker_db, "--from", "2026-03-02", "--to", "2026-03-02", out=tmp_path)
    assert result.returncode == 0, result.stderr
    data = json.loads((tmp_path / "report_2026-03-02_2026-03-02.json").read_text(encoding="utf-8"))
    assert (data["conversations"], data["user_messages"]) == (3, 7)
    assert (tmp_path / "report_2026-03-02_2026-03-02.html").exists()


@pytest.mark.parametrize("kind", ["no file", "no events table", "empty events table"])
def test_cli_on_an_empty_store_says_so_and_exits_0(tmp_path, kind):
    path = tmp_path / "empty.db"
    if kind == "no events table":
        import sqlite3

        sqlite3.connect(path).execute("CREATE TABLE other (id INTEGER)").connection.close()
    elif kind == "empty events table":
        SQLTrackerStore(dialect="sqlite", db=str(path)).engine.dispose()
    out = tmp_path / "reports"
    result = run_cli(f"sqlite:///{path}", out=out)
    assert result.returncode == 0, result.stderr
    assert "Keine Gespräche gefunden" in result.stdout and "No conversations found" in result.stdout
    assert "Traceback" not in result.stderr
    assert not out.exists()
    assert path.exists() == (kind != "no file")  # the report never creates a database


def test_cli_rejects_a_bad_date_without_traceback(tmp_path):
    result = run_cli("sqlite:///nowhere.db", "--from", "2026-13-01", out=tmp_path)
    assert result.returncode == 2 and "YYYY-MM-DD" in result.stderr and "Traceback" not in result.stderr


def test_cli_on_an_unreachable_database_exits_1_without_password_or_traceback(tmp_path):
    result = run_cli("postgresql://postgres:geheim@127.0.0.1:1/nirgends", out=tmp_path)
    assert result.returncode == 1
    assert "Datenbank nicht lesbar" in result.stderr and "geheim" not in result.stderr
    assert "Traceback" not in result.stderr


def test_postgresql_gives_the_same_figures_as_sqlite(report, postgres_url):
    """The same seed, saved by the project's own tracker store into a fresh PostgreSQL schema."""
    from revierlotse.stores.tracker_store import DatabaseTrackerStore

    store = DatabaseTrackerStore(url=postgres_url)
    seed(store)
    store.engine.dispose()
    assert load_report(settings_for(postgres_url)).as_dict() == report.as_dict()


def _count(shares, key) -> int:
    return next((s.count for s in shares if s.key == key), 0)


@pytest.mark.e2e
def test_report_reads_what_the_running_bot_stored(bot, kb_url, tmp_path):
    """Real turns over REST land in the tracker store; the report counts them (as deltas,
    since other end-to-end tests talk to the same bot) and masks the phone number."""
    settings = settings_for(kb_url)
    before = load_report(settings)
    sender = new_sender()
    bot.ask("/ask_salary", sender)
    bot.ask("Was verdient ein Einsteiger?", sender)
    bot.ask("Bestell mir eine Pizza, Rückruf unter 0203 7654321", sender)
    after = load_report(settings)

    def delta(get):
        return get(after) - (get(before) if before else 0)

    assert delta(lambda r: r.conversations) == 1
    assert delta(lambda r: r.user_messages) == 3
    assert delta(lambda r: _count(r.channels, "Shell/REST")) == 1
    assert delta(lambda r: _count(r.topics, "salary")) == 2
    assert next(s.label for s in after.topics if s.key == "salary") == "Gehalt"  # from the loaded KB
    assert delta(lambda r: r.out_of_scope + r.not_understood) == 1
    wordings = [g.text for g in after.unanswered] + [t for g in after.unanswered for t, _ in g.variants]
    assert "Bestell mir eine Pizza, Rückruf unter [Telefon]" in wordings
    html = write_report(after, tmp_path).read_text(encoding="utf-8")
    assert sender not in html and "7654321" not in html


# --- ratings of answers (👍/👎, actions/feedback.py) ---------------------------------------
#
#   06.03.  H web       Was verdient ein Einsteiger? 👎, comment with a phone number
#                       | Welche Skills brauche ich? 👍
#           I telegram  /ask_salary 👍, then 👎 on the same answer (the latest counts)
#   07.03.  J rest      "das war nicht hilfreich" with no answer before it: no topic, no question

def rated_conversation(channel: str, start: float, turns) -> list:
    """Like `conversation`, but a turn may carry slot events: (text, intent, confidence, slots),
    where `slots` maps slot name -> value, or to a callable of the turn's answer time."""
    events = [
        ActionExecuted("action_session_start", timestamp=start),
        SessionStarted(timestamp=start),
        ActionExecuted("action_listen", timestamp=start),
    ]
    answered_at = None
    for i, (text, intent, confidence, slots) in enumerate(turns):
        ts = start + 60 * i + 1
        events += [user(text, intent, confidence, channel, ts), ActionExecuted("action_answer", timestamp=ts + 1)]
        for name, value in slots.items():
            events.append(SlotSet(name, value(answered_at) if callable(value) else value, timestamp=ts + 1))
        events += [BotUttered("Antwort", timestamp=ts + 1), ActionExecuted("action_listen", timestamp=ts + 2)]
        if intent.startswith("ask_"):
            answered_at = ts + 1
    return events


def rating(value: str, topic, facts, question):
    return lambda answered_at: {"rating": value, "topic": topic, "facts": facts, "question": question,
                                "answered_at": answered_at if topic else None}


RATED_SEED = [
    ("H", rated_conversation("socketio", at(6, 10), [
        ("Was verdient ein Einsteiger?", "ask_salary", 0.9, {}),
        ("/feedback_unhelpful", "feedback_unhelpful", 1.0,
         {"answer_feedback": rating("unhelpful", "salary", ["salary-entry"], "Was verdient ein Einsteiger?")}),
        (f"Mir fehlt Teilzeit, ruf an {PHONE}", "nlu_fallback", 0.2, {"feedback_comment": f"Mir fehlt Teilzeit, ruf an {PHONE}"}),
        ("Welche Skills brauche ich?", "ask_skills", 0.8, {"feedback_comment": None}),
        ("/feedback_helpful", "feedback_helpful", 1.0,
         {"answer_feedback": rating("helpful", "skills", ["skills-overview"], "Welche Skills brauche ich?")}),
    ])),
    ("I", rated_conversation("telegram", at(6, 12), [
        ("/ask_salary", "ask_salary", 1.0, {}),
        ("/feedback_helpful", "feedback_helpful", 1.0,
         {"answer_feedback": rating("helpful", "salary", ["salary-overview"], "/ask_salary")}),
        ("/feedback_unhelpful", "feedback_unhelpful", 1.0,
         {"answer_feedback": rating("unhelpful", "salary", ["salary-overview"], "/ask_salary")}),
    ])),
    ("J", rated_conversation("rest", at(7, 9), [
        ("das war nicht hilfreich", "feedback_unhelpful", 0.7,
         {"answer_feedback": rating("unhelpful", None, [], None)}),
    ])),
]
RATED_SENDERS = {name: f"rated-{name}-{uuid.uuid4().hex[:10]}" for name in "HIJ"}


def seed_ratings(store: SQLTrackerStore) -> None:
    for name, events in RATED_SEED:
        asyncio.run(store.save(DialogueStateTracker.from_events(RATED_SENDERS[name], events)))


@pytest.fixture(scope="module")
def rated_db(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("rated") / "tracker.db"
    store = SQLTrackerStore(dialect="sqlite", db=str(path))
    seed_ratings(store)
    store.engine.dispose()
    return f"sqlite:///{path}"


@pytest.fixture(scope="module")
def rated_report(rated_db):
    return load_report(settings_for(rated_db))


def test_satisfaction_per_topic_counts_the_latest_rating_of_each_answer(rated_report):
    assert [(t.key, t.label, t.helpful, t.unhelpful) for t in rated_report.satisfaction] == [
        ("salary", "Gehalt", 0, 2),
        ("skills", "Fähigkeiten", 1, 0),
        ("", "ohne Thema", 0, 1),
    ]
    assert (rated_report.helpful, rated_report.unhelpful) == (1, 3)
    assert rated_report.helpful_rate == pytest.approx(0.25)
    assert rated_report.satisfaction[1].helpful_rate == 1.0


def test_unhelpful_answers_are_listed_newest_first_with_question_facts_and_masked_comment(rated_report):
    assert [(a.day, a.label, a.question, a.facts, a.comment) for a in rated_report.unhelpful_answers] == [
        ("2026-03-07", "ohne Thema", "(Frage nicht gespeichert)", [], None),
        ("2026-03-06", "Gehalt", "Button „Gehalt“", ["salary-overview"], None),
        ("2026-03-06", "Gehalt", "Was verdient ein Einsteiger?", ["salary-entry"], "Mir fehlt Teilzeit, ruf an [Telefon]"),
    ]


def test_a_comment_is_not_counted_as_an_unanswered_question(rated_report):
    assert rated_report.not_understood == 0
    assert all("Teilzeit" not in g.text for g in rated_report.unanswered)
    assert rated_report.user_messages == 9  # the comment still counts as a message


def test_html_report_shows_ratings_without_personal_data(rated_report, tmp_path):
    html = write_report(rated_report, tmp_path).read_text(encoding="utf-8")
    data = (tmp_path / "report.json").read_text(encoding="utf-8")
    assert "Bewertungen der Antworten" in html and "Als nicht hilfreich bewertete Antworten" in html
    assert "„Mir fehlt Teilzeit, ruf an [Telefon]“" in html and "gezeigt: salary-entry" in html
    assert "25,0 %" in html  # answers rated helpful overall: 1 of 4
    for text in (html, data):
        assert PHONE not in text and "1234567" not in text
        for sender in RATED_SENDERS.values():
            assert sender not in text
    assert json.loads(data)["satisfaction"][0] == {
        "key": "salary", "label": "Gehalt", "helpful": 0, "unhelpful": 2, "helpful_rate": 0.0}


def test_ratings_read_the_same_from_postgresql(rated_report, postgres_url):
    from revierlotse.stores.tracker_store import DatabaseTrackerStore

    store = DatabaseTrackerStore(url=postgres_url)
    seed_ratings(store)
    store.engine.dispose()
    assert load_report(settings_for(postgres_url)).as_dict() == rated_report.as_dict()


def test_report_without_ratings_says_so(report, tmp_path):
    html = write_report(report, tmp_path).read_text(encoding="utf-8")
    assert report.satisfaction == [] and report.unhelpful_answers == []
    assert "niemand eine Antwort bewertet" in html
