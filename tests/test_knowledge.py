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
from revierlotse.kb.models import make_engine
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


def edit_source(folder: Path, change) -> None:
    path = folder / "knowledge.yml"
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    change(doc)
    path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False), encoding="utf-8")


def test_real_source_is_valid_and_covers_every_topic():
    src = read_source(SOURCE)
    topics = {t["key"] for t in src.topics}
    assert {"salary", "skills", "tasks", "culture", "training", "certifications", "trends", "outlook", "reality"} <= topics


def test_loading_twice_is_idempotent(engine):
    first = load_knowledge(engine, SOURCE)
    second = load_knowledge(engine, SOURCE)
    assert first.changed and not second.changed
    with engine.connect() as conn:
        assert conn.execute(text("select count(*) from kb_entries")).scalar() == first.entries


def test_salary_without_level_gives_both_bands(kb):
    answer = kb.answer("salary")
    assert "4.200 bis 5.200 €" in answer.text
    assert "5.800 bis 7.200 €" in answer.text
    assert "Abschnitt 4" in answer.text


def test_entry_level_salary_gives_entry_band_first(kb):
    answer = kb.answer("salary", level="entry")
    assert answer.text.index("4.200 bis 5.200") < answer.text.index("5.800")
    assert answer.entry_ids == ("salary-entry",)


def test_team_lead_in_old_industry_gets_senior_band_and_industry_note(kb):
    answer = kb.answer("salary", level="senior", company_type="industry")
    assert "5.800 bis 7.200 €" in answer.text
    assert "4.200" not in answer.text
    assert "Industriebetrieb" in answer.text
    assert answer.qualifiers == {"level": "senior", "company_type": "industry"}


def test_technician_switcher_hears_about_starting_below_entry_band(kb):
    answer = kb.answer("salary", background="technician")
    assert "unter der Einstiegsspanne" in answer.text


def test_unknown_qualifier_values_are_ignored_not_guessed(kb):
    assert kb.answer("salary", level="wizard").text == kb.answer("salary").text


def test_more_hands_out_each_detail_once_then_none(kb):
    shown = list(kb.answer("skills").entry_ids)
    seen = []
    while (detail := kb.more("skills", shown)) is not None:
        shown += detail.entry_ids
        seen += detail.entry_ids
    assert seen and len(seen) == len(set(seen))


def test_every_fact_answer_names_its_section(kb):
    for key, _label in kb.topics():
        assert re.search(r"Quelle: Artikel „IT Manager Jobs in Duisburg“, Abschnitt \d", kb.answer(key).text)


def test_only_salary_answers_contain_euro_figures(kb):
    for key, _label in kb.topics():
        if key != "salary":
            assert not EURO.search(kb.answer(key).text), key


def test_menu_lists_the_six_topics_in_order(kb):
    assert [label for _, label in kb.menu()] == ["Gehalt", "Fähigkeiten", "Alltag", "Kultur", "Weiterbildung", "Perspektiven"]


def test_edited_answer_is_served_after_reload_without_restart(engine, source_copy):
    load_knowledge(engine, source_copy)
    kb = KnowledgeBase(engine)
    before = kb.answer("certifications").text

    def change(doc):
        entry = next(e for e in doc["entries"] if e["id"] == "certifications-overview")
        entry["text"] = "Geänderte Antwort zu Zertifikaten."

    edit_source(source_copy, change)
    assert load_knowledge(engine, source_copy).changed
    after = kb.answer("certifications").text
    assert before != after and after.startswith("Geänderte Antwort")


def test_one_shared_instance_per_url_reads_the_tables_once_and_still_sees_reloads(tmp_path, source_copy):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    engine = make_engine(url)
    load_knowledge(engine, source_copy)
    kb = KnowledgeBase.from_url(url)
    assert KnowledgeBase.from_url(url) is kb  # actions ask per call: no re-read per call
    kb.answer("certifications")
    snapshot = kb._snapshot
    kb.answer("salary")
    assert kb._snapshot is snapshot  # unchanged content: the snapshot is reused

    def change(doc):
        entry = next(e for e in doc["entries"] if e["id"] == "certifications-overview")
        entry["text"] = "Geänderte Antwort zu Zertifikaten."

    edit_source(source_copy, change)
    assert load_knowledge(engine, source_copy).changed
    assert KnowledgeBase.from_url(url).answer("certifications").text.startswith("Geänderte Antwort")
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
    before = view.answer("certifications").text
    view.has_topic("salary"), view.menu(), view.qualifier_values(), view.reply("out_of_scope")
    assert len(statements) == 1  # the content-hash check when pinning, nothing per question

    def change(doc):
        entry = next(e for e in doc["entries"] if e["id"] == "certifications-overview")
        entry["text"] = "Geänderte Antwort zu Zertifikaten."

    edit_source(source_copy, change)
    assert load_knowledge(engine, source_copy).changed
    assert view.answer("certifications").text == before  # the message in flight stays on its version
    assert kb.pinned().answer("certifications").text.startswith("Geänderte Antwort")  # the next one sees it
    event.remove(kb._sessions.kw["bind"], "before_cursor_execute", listener)
    engine.dispose()


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["entries"][0].update(section=99), "unknown section 99"),
        (lambda d: d["entries"][0].update(topic="astrology"), "unknown topic 'astrology'"),
        (lambda d: d["entries"][0].update(text="{band:nonexistent}"), "unknown salary band 'nonexistent'"),
        (lambda d: d["entries"].append(dict(d["entries"][0])), "duplicate id"),
        (lambda d: d["salary_bands"][0].update(min_eur=9000), "min_eur <= max_eur"),
        (lambda d: d["entries"][1].update(qualifiers={"level": "wizard"}), "unknown value 'wizard'"),
        (lambda d: d["entries"][0].pop("text"), "missing 'text'"),
        (lambda d: d["replies"].pop("out_of_scope"), "replies: missing out_of_scope"),
    ],
)
def test_bad_source_is_rejected_naming_file_and_entry_and_loads_nothing(engine, source_copy, change, message):
    load_knowledge(engine, SOURCE)
    kb = KnowledgeBase(engine)
    good = kb.answer("salary").text
    edit_source(source_copy, change)
    with pytest.raises(KnowledgeSourceError) as err:
        load_knowledge(engine, source_copy)
    assert message in str(err.value)
    if "entries" in str(err.value) and "replies" not in message:
        assert "knowledge.yml" in str(err.value)
    assert kb.answer("salary").text == good


def test_invalid_yaml_is_reported_with_file_name(engine, source_copy):
    (source_copy / "knowledge.yml").write_text("entries: [unclosed", encoding="utf-8")
    with pytest.raises(KnowledgeSourceError, match="knowledge.yml: not valid YAML"):
        load_knowledge(engine, source_copy)


def test_empty_database_is_reported_as_unavailable(engine):
    with pytest.raises(KnowledgeUnavailable):
        KnowledgeBase(engine).answer("salary")


def test_unreachable_database_is_reported_as_unavailable():
    kb = KnowledgeBase(make_engine("postgresql://nobody@127.0.0.1:1/none"))
    with pytest.raises(KnowledgeUnavailable):
        kb.topics()
