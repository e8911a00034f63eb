"""Loader and query layer against a real SQLite database."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import yaml
from sqlalchemy import text

from revierlotse.kb import KnowledgeBase, KnowledgeUnavailable
from revierlotse.kb.loader import load_knowledge
from revierlotse.db import make_engine
from revierlotse.kb.source import KnowledgeSourceError, read_source
from revierlotse.settings import PROJECT_ROOT

SOURCE = PROJECT_ROOT / "data" / "knowledge"
EURO = re.compile(r"\d\.\d{3}")


@pytest.fixture()
def engine(tmp_path):
    eng = make_engine(f"sqlite:///{tmp_path / 'kb.db'}")
    yield eng
    eng.dispose()


@pytest.fixture()
def kb(engine):
    load_knowledge(engine, SOURCE)
    return KnowledgeBase(engine)


@pytest.fixture()
def source_copy(tmp_path):
    folder = tmp_path / "knowledge"
    shutil.copytree(SOURCE, folder)
    return folder


def edit_source(folder: Path, change, file: str = "knowledge.yml") -> None:
    path = folder / file
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_real_source_is_valid_and_covers_every_topic():
    src = read_source(SOURCE)
    topics = {t["key"] for t in src.topics}
    assert {"salary", "skills", "tasks", "culture", "training", "certifications", "trends", "outlook", "reality"} <= topics


def test_every_topic_has_an_overview_and_every_fact_its_question_forms():
    src = read_source(SOURCE)
    assert {o["topic"] for o in src.overviews} == {t["key"] for t in src.topics}
    for fact in src.facts:
        forms = [*fact.get("asks", []), *fact.get("asks_yes", []), *fact.get("asks_no", [])]
        assert len(forms) >= 4, fact["id"]


def test_loading_twice_is_idempotent(engine):
    first = load_knowledge(engine, SOURCE)
    second = load_knowledge(engine, SOURCE)
    assert first.changed and not second.changed
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from kb_facts where kind = 'fact'")).scalar() == first.facts
        assert conn.execute(text("select count(*) from kb_fact_questions")).scalar() > 4 * first.facts


def test_salary_without_level_gives_both_bands(kb):
    answer = kb.answer_topic("salary")
    assert "4.200 bis 5.200 €" in answer.text
    assert "5.800 bis 7.200 €" in answer.text
    assert "Abschnitt 4" in answer.text


def test_entry_level_salary_gives_entry_band_first(kb):
    answer = kb.answer_topic("salary", level="entry")
    assert answer.text.index("4.200 bis 5.200") < answer.text.index("5.800")
    assert answer.entry_ids[0] == "salary-entry-band"
    assert answer.qualifiers == {"level": "entry"}


def test_team_lead_in_old_industry_gets_senior_band_and_industry_note(kb):
    answer = kb.answer_topic("salary", level="senior", company_type="industry")
    assert "5.800 bis 7.200 €" in answer.text
    assert answer.text.index("5.800") < answer.text.index("4.200") if "4.200" in answer.text else True
    assert "Industriebetrieb" in answer.text
    assert answer.qualifiers == {"level": "senior", "company_type": "industry"}


def test_technician_switcher_hears_about_starting_below_entry_band(kb):
    answer = kb.answer_topic("salary", background="technician")
    assert "unter der Einstiegsspanne" in answer.text
    follow_up = kb.follow_up("salary", ["background"], background="technician")
    assert follow_up.entry_ids == ("salary-changer-below",)


def test_a_follow_up_on_a_topic_without_a_fact_for_it_is_none(kb):
    assert kb.follow_up("trends", ["level"], level="entry") is None


def test_unknown_qualifier_values_are_ignored_not_guessed(kb):
    assert kb.answer_topic("salary", level="wizard").text == kb.answer_topic("salary").text


def test_more_hands_out_each_fact_once_then_none(kb):
    shown = list(kb.answer_topic("skills").entry_ids)
    seen = []
    while (detail := kb.more("skills", shown)) is not None:
        shown += detail.entry_ids
        seen += detail.entry_ids
    assert seen and len(seen) == len(set(seen))


def test_every_fact_answer_names_its_section(kb):
    for key, _label in kb.topics():
        assert re.search(r"Quelle: Artikel „IT Manager Jobs in Duisburg“, Abschnitt \d", kb.answer_topic(key).text)


def test_only_salary_answers_contain_euro_figures(kb):
    for key, _label in kb.topics():
        if key != "salary":
            assert not EURO.search(kb.answer_topic(key).text), key


def test_menu_lists_the_six_topics_in_order(kb):
    assert [label for _, label in kb.menu()] == ["Gehalt", "Fähigkeiten", "Alltag", "Kultur", "Weiterbildung", "Perspektiven"]


def test_edited_answer_is_served_after_reload_without_restart(engine, source_copy):
    load_knowledge(engine, source_copy)
    kb = KnowledgeBase(engine)
    before = kb.answer_topic("certifications").text

    edit_source(source_copy, change_certifications, "facts.yml")
    assert load_knowledge(engine, source_copy).changed
    after = kb.answer_topic("certifications").text
    assert before != after and after.startswith("Geänderte Antwort")


def change_certifications(doc):
    overview = next(o for o in doc["overviews"] if o["id"] == "certifications-overview")
    overview["intro"] = "Geänderte Antwort zu Zertifikaten."


def test_one_shared_instance_per_url_reads_the_tables_once_and_still_sees_reloads(tmp_path, source_copy):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(url)
    load_knowledge(engine, source_copy)
    kb = KnowledgeBase.from_url(url)
    assert KnowledgeBase.from_url(url) is kb  # actions ask per call: no re-read per call
    kb.answer_topic("certifications")
    snapshot = kb._snapshot
    kb.answer_topic("salary")
    assert kb._snapshot is snapshot  # unchanged content: the snapshot is reused

    edit_source(source_copy, change_certifications, "facts.yml")
    assert load_knowledge(engine, source_copy).changed
    assert KnowledgeBase.from_url(url).answer_topic("certifications").text.startswith("Geänderte Antwort")
    engine.dispose()


def test_a_pinned_view_answers_a_message_from_one_version_with_one_query(tmp_path, source_copy):
    from sqlalchemy import event

    url = f"sqlite:///{tmp_path / 'pinned.db'}"
    engine = make_engine(url)
    load_knowledge(engine, source_copy)
    kb = KnowledgeBase.from_url(url)
    kb.menu()  # snapshot read
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731 - (conn, cursor, statement, ...)
    event.listen(kb._sessions.kw["bind"], "before_cursor_execute", listener)
    view = kb.pinned()
    before = view.answer_topic("certifications").text
    view.has_topic("salary"), view.menu(), view.qualifier_values(), view.reply("out_of_scope")
    assert len(statements) == 1  # the content-hash check when pinning, nothing per question

    edit_source(source_copy, change_certifications, "facts.yml")
    assert load_knowledge(engine, source_copy).changed
    assert view.answer_topic("certifications").text == before  # the message in flight stays on its version
    assert kb.pinned().answer_topic("certifications").text.startswith("Geänderte Antwort")  # the next one sees it
    event.remove(kb._sessions.kw["bind"], "before_cursor_execute", listener)
    engine.dispose()


@pytest.mark.parametrize(
    "file, change, message",
    [
        ("facts.yml", lambda d: d["facts"][0].update(section=99), "unknown section 99"),
        ("facts.yml", lambda d: d["facts"][0].update(topic="astrology"), "unknown topic 'astrology'"),
        ("facts.yml", lambda d: d["facts"][0].update(text="{band:nonexistent}"), "unknown salary band 'nonexistent'"),
        ("facts.yml", lambda d: d["facts"].append(dict(d["facts"][0])), "duplicate id"),
        ("knowledge.yml", lambda d: d["salary_bands"][0].update(min_eur=9000), "min_eur <= max_eur"),
        ("facts.yml", lambda d: d["facts"][1].update(qualifiers={"level": "wizard"}), "unknown value 'wizard'"),
        ("facts.yml", lambda d: d["facts"][0].pop("text"), "empty text"),
        ("facts.yml", lambda d: [d["facts"][0].pop(k, None) for k in ("asks", "asks_yes", "asks_no")],
         "needs at least one question form"),
        ("facts.yml", lambda d: d["overviews"][0].update(facts=["no-such-fact"]), "unknown fact 'no-such-fact'"),
        ("facts.yml", lambda d: d["overviews"].pop(0), "topics without an overview"),
        ("knowledge.yml", lambda d: d["not_covered"][0].update(patterns=["(unclosed"]), "bad pattern"),
        ("knowledge.yml", lambda d: d["replies"].pop("out_of_scope"), "replies: missing out_of_scope"),
    ],
)
def test_bad_source_is_rejected_naming_file_and_entry_and_loads_nothing(engine, source_copy, file, change, message):
    load_knowledge(engine, SOURCE)
    kb = KnowledgeBase(engine)
    good = kb.answer_topic("salary").text
    edit_source(source_copy, change, file)
    with pytest.raises(KnowledgeSourceError) as err:
        load_knowledge(engine, source_copy)
    assert message in str(err.value)
    if "facts" in str(err.value) and "topics without" not in message:
        assert file in str(err.value)
    assert kb.answer_topic("salary").text == good


def test_invalid_yaml_is_reported_with_file_name(engine, source_copy):
    (source_copy / "knowledge.yml").write_text("facts: [unclosed", encoding="utf-8")
    with pytest.raises(KnowledgeSourceError, match="knowledge.yml: not valid YAML"):
        load_knowledge(engine, source_copy)


def test_empty_database_is_reported_as_unavailable(engine):
    with pytest.raises(KnowledgeUnavailable):
        KnowledgeBase(engine).answer_topic("salary")


def test_unreachable_database_is_reported_as_unavailable():
    kb = KnowledgeBase(make_engine("postgresql://nobody@127.0.0.1:1/none"))
    with pytest.raises(KnowledgeUnavailable):
        kb.topics()
