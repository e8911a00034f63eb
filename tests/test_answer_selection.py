"""Answer selection in the knowledge layer: the fact asked for leads, and what the
article does not cover is said first. Real SQLite, the real sentence encoder."""

from __future__ import annotations

import shutil

import pytest
import yaml

from revierlotse.db import make_engine
from revierlotse.kb import KnowledgeBase
from revierlotse.kb.loader import load_knowledge
from revierlotse.kb.selection import is_yes_no_question
from revierlotse.settings import PROJECT_ROOT

SOURCE = PROJECT_ROOT / "data" / "knowledge"
LABEL = "Was meine Quelle über IT Manager in Duisburg sagt:"


@pytest.fixture(scope="module")
def kb(tmp_path_factory):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('sel') / 'kb.db'}")
    load_knowledge(engine, SOURCE)
    yield KnowledgeBase(engine)
    engine.dispose()


def ask(kb, question, **kwargs):
    answers = kb.answer_question(question, **kwargs)
    return answers[0]


@pytest.mark.parametrize(
    "question, fact, lead",
    [
        ("Ist die Arbeit dort eher öde?", "outlook-never-boring", "no"),
        ("Kann man nach Dienstschluss gut abschalten?", "tasks-decisions-after-hours", "no"),
        ("Läuft in den Betrieben noch viel Uralt-Software?", "culture-legacy-90s", "yes"),
        ("Welche Zertifizierungen sind gefragt?", "certifications-areas", None),
        ("Was verdient man als Einsteiger?", "salary-entry-band", None),
    ],
)
def test_the_fact_asked_for_leads_and_a_yes_no_question_gets_its_direct_answer(kb, question, fact, lead):
    answer = ask(kb, question)
    assert answer.uncovered is None
    assert answer.entry_ids[0] == fact
    if lead:
        assert answer.lead == lead
        assert answer.text.startswith("Nein." if lead == "no" else "Ja.")


def test_a_general_question_gets_the_topic_overview(kb):
    answer = ask(kb, "Wie ist das Gehalt?", topic_prior={"salary": 0.9})
    assert {"salary-entry-band", "salary-senior-band"} <= set(answer.entry_ids)


@pytest.mark.parametrize(
    "question, rule",
    [
        ("Gibt es Gleitzeit?", "conditions"),
        ("Wie viele Tage Urlaub bekommt man?", "conditions"),
        ("Was verdient ein Systemadministrator?", "other_role"),
        ("Verdient man als Frau weniger?", "pay_gap"),
        ("Zahlt Thyssenkrupp besser als andere?", "employer"),
        ("Was ist ein CTO?", "top_role"),
        ("Was kostet eine Zertifizierung?", "certificate_details"),
        ("Wie schreibe ich eine gute Bewerbung?", "application"),
    ],
)
def test_what_the_article_does_not_cover_is_said_first(kb, question, rule):
    answer = ask(kb, question, topic_prior={"salary": 0.8})
    assert answer.uncovered == rule
    assert answer.entry_ids == ()  # nothing is given as the answer
    first = answer.text.split("\n\n")[0]
    assert "€" not in first and "Quelle nichts" in first or "nennt meine Quelle nicht" in first or "sagt meine Quelle nicht" in first


def test_an_offer_after_not_covered_is_labelled_as_being_about_it_managers(kb):
    answer = ask(kb, "Zahlt Thyssenkrupp besser als andere?", topic_prior={"salary": 0.8})
    assert answer.offered
    statement, label, *_ = answer.text.split("\n")
    assert statement.startswith("Zu einzelnen Arbeitgebern wie „Thyssenkrupp“") and not label
    assert answer.text.split("\n\n")[1].startswith(LABEL)


def test_another_jobs_pay_never_gets_the_bands_as_its_answer(kb):
    answer = ask(kb, "Was verdient ein Systemadministrator in Duisburg?", topic_prior={"salary": 0.9})
    assert answer.uncovered == "other_role"
    if "€" in answer.text:
        assert answer.text.index(LABEL) < answer.text.index("€")


def test_a_role_that_is_the_askers_background_is_not_the_subject(kb):
    answer = ask(kb, "Ich bin Admin und will IT Manager werden – was kann ich verdienen?",
                 topic_prior={"salary": 0.9}, qualifiers={"background": "technician"}, mentioned=["background"])
    assert answer.uncovered is None
    assert "salary-changer-below" in answer.entry_ids


def test_a_comparison_with_berlin_uses_the_articles_comparison(kb):
    answer = ask(kb, "Ist die IT-Szene dort wie in Berlin?", place="Berlin", topic_prior={"culture": 0.6})
    assert answer.uncovered is None
    assert answer.entry_ids[0] == "culture-not-berlin-munich"


def test_another_citys_figures_stay_unanswered(kb):
    answer = ask(kb, "Was verdient man in München?", place="München", topic_prior={"salary": 0.9})
    assert answer.uncovered == "other_place"
    assert answer.text.startswith("Für München habe ich keine Angaben")
    if "€" in answer.text:
        assert answer.text.index(LABEL) < answer.text.index("€")


def test_a_question_no_fact_answers_is_said_to_be_unanswered(kb):
    answer = ask(kb, "Welche Farbe hat der Himmel über dem Landschaftspark bei Nacht?")
    assert answer.uncovered in ("unknown", "other_subject") and answer.entry_ids == ()


def test_an_elliptic_follow_up_stays_on_the_last_topic(kb):
    answer = ask(kb, "und später?", previous_topic="salary")
    assert answer.topic == "salary"


@pytest.mark.parametrize(
    "question, yes_no",
    [("Ist das eher öde?", True), ("Gibt es Gleitzeit?", True), ("Mich würde interessieren, ob man gut verdient", True),
     ("Was verdient man?", False), ("Wie ist die Kultur?", False)],
)
def test_yes_no_questions_are_recognised(question, yes_no):
    assert is_yes_no_question(question) is yes_no


def test_a_new_question_form_changes_the_next_answer_without_training(tmp_path):
    folder = tmp_path / "knowledge"
    shutil.copytree(SOURCE, folder)
    engine = make_engine(f"sqlite:///{tmp_path / 'kb.db'}")
    load_knowledge(engine, folder)
    kb = KnowledgeBase(engine)
    question = "Wie halte ich es mit dem Schalke-Becher im Büro?"
    before = kb.answer_question(question)[0]
    path = folder / "facts.yml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    fact = next(f for f in doc["facts"] if f["id"] == "culture-stay-kumpel")
    fact["asks"].append(question)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")
    assert load_knowledge(engine, folder).changed
    after = kb.answer_question(question)[0]
    assert after.entry_ids[:1] == ("culture-stay-kumpel",) != before.entry_ids[:1]
    engine.dispose()


def test_the_coverage_check_lists_a_sentence_no_fact_covers(tmp_path):
    from revierlotse.kb.coverage import uncovered
    from revierlotse.kb.source import read_source

    facts = [f["text"] for f in read_source(SOURCE).facts if "{band:" not in f["text"]][:6]
    stray = "Freitags serviert die Kantine am Hafen Currywurst mit Pommes und einem kleinen Salat."
    article = " ".join([*facts, stray])
    listed = [p.text for p in uncovered(article, SOURCE)]
    assert stray in listed
    assert not any(f in listed for f in facts)
