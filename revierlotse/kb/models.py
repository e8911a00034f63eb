"""SQLAlchemy models of the knowledge base. No Rasa imports, no business logic."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Text
from sqlalchemy.orm import declarative_base

# The engine factory lives in revierlotse.db; re-exported for the knowledge layer's modules.
from revierlotse.db import engine_for, make_engine, session_factory  # noqa: F401

Base = declarative_base()


class Section(Base):
    """A section of the source article; every answer names one."""

    __tablename__ = "kb_sections"
    number = Column(Integer, primary_key=True, autoincrement=False)
    title = Column(String(200), nullable=False)


class Topic(Base):
    """A topic a user can ask about, with the German label used on buttons."""

    __tablename__ = "kb_topics"
    key = Column(String(40), primary_key=True)
    label = Column(String(80), nullable=False)
    position = Column(Integer, nullable=False)
    # Place in the topic menu (buttons), or None when the topic is not on the menu.
    menu_position = Column(Integer)


class Qualifier(Base):
    """A known value of a qualifier (level, background, company_type) with its German label."""

    __tablename__ = "kb_qualifiers"
    name = Column(String(40), primary_key=True)
    value = Column(String(40), primary_key=True)
    label = Column(String(120), nullable=False)


class SalaryBand(Base):
    """A salary band from the article, in EUR per `period`."""

    __tablename__ = "kb_salary_bands"
    key = Column(String(40), primary_key=True)
    label = Column(String(200), nullable=False)
    min_eur = Column(Integer, nullable=False)
    max_eur = Column(Integer, nullable=False)
    period = Column(String(20), nullable=False)
    section_number = Column(Integer, ForeignKey("kb_sections.number"), nullable=False)


class Entry(Base):
    """One piece of answer text on a topic, optionally restricted by qualifiers."""

    __tablename__ = "kb_entries"
    id = Column(String(80), primary_key=True)
    topic = Column(String(40), ForeignKey("kb_topics.key"), nullable=False, index=True)
    kind = Column(String(20), nullable=False)
    level = Column(String(40))
    background = Column(String(40))
    company_type = Column(String(40))
    text = Column(Text, nullable=False)
    section_number = Column(Integer, ForeignKey("kb_sections.number"), nullable=False)
    position = Column(Integer, nullable=False)


class Reply(Base):
    """Fixed German replies that are not tied to a topic (honest 'no data', apology...)."""

    __tablename__ = "kb_replies"
    key = Column(String(40), primary_key=True)
    text = Column(Text, nullable=False)


class Meta(Base):
    """Key/value facts about the loaded source (content hash, article title, hint template)."""

    __tablename__ = "kb_meta"
    key = Column(String(40), primary_key=True)
    value = Column(Text, nullable=False)


QUALIFIER_NAMES = ("level", "background", "company_type")
