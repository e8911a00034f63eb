"""The apology every channel says when a turn fails, read from the knowledge files."""

from __future__ import annotations

from pathlib import Path

import yaml

from revierlotse.replies import LAST_RESORT_APOLOGY, apology_text

KNOWLEDGE = Path(__file__).resolve().parent.parent / "data" / "knowledge"


def _apology_in_source() -> str:
    replies = {}
    for file in sorted(KNOWLEDGE.glob("*.yml")):
        replies.update((yaml.safe_load(file.read_text(encoding="utf-8")) or {}).get("replies") or {})
    return str(replies["apology"]).strip()


def test_the_apology_is_the_one_written_in_the_knowledge_source():
    assert apology_text(KNOWLEDGE) == _apology_in_source()


def test_an_edited_source_file_gives_the_new_apology(tmp_path):
    source = tmp_path / "replies.yml"
    source.write_text("replies:\n  apology: Erste Fassung.\n", encoding="utf-8")
    assert apology_text(tmp_path) == "Erste Fassung."
    source.write_text("replies:\n  apology: Zweite, längere Fassung.\n", encoding="utf-8")
    assert apology_text(tmp_path) == "Zweite, längere Fassung."


def test_an_unreadable_source_gives_the_fixed_last_resort_sentence(tmp_path):
    assert apology_text(tmp_path / "missing") == LAST_RESORT_APOLOGY
    (tmp_path / "broken.yml").write_text("replies: [nicht: eine: zuordnung", encoding="utf-8")
    assert apology_text(tmp_path) == LAST_RESORT_APOLOGY
    (tmp_path / "broken.yml").write_text("replies:\n  greeting: Hallo\n", encoding="utf-8")
    assert apology_text(tmp_path) == LAST_RESORT_APOLOGY
