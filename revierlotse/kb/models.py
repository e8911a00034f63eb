"""SQLAlchemy models of the knowledge base. No Rasa imports, no business logic."""

from __future__ import annotations

from sqlalchemy import Column, ForeignKey, Integer, String, Text
from sqlalchemy.orm import declarative_base


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


class Fact(Base):
    """One claim of the article in our words (kind 'fact'), or a topic overview (kind
    'overview') that answers general questions with the facts it `includes`."""

    __tablename__ = "kb_facts"
    id = Column(String(80), primary_key=True)
    kind = Column(String(20), nullable=False)
    topic = Column(String(40), ForeignKey("kb_topics.key"), nullable=False, index=True)
    section_number = Column(Integer, ForeignKey("kb_sections.number"), nullable=False)
    # A fact's statement; an overview's one-line introduction (may be empty).
    text = Column(Text, nullable=False)
    includes = Column(Text, nullable=False, default="")  # overview: fact ids, space-separated
    keywords = Column(Text, nullable=False, default="")  # space-separated cue words
    places = Column(Text, nullable=False, default="")  # places the fact compares Duisburg with
    qualifiers = Column(Text, nullable=False, default="{}")  # JSON: name -> [values]
    position = Column(Integer, nullable=False)


class FactQuestion(Base):
    """A question form a fact or overview answers; `polarity` is the honest answer to a
    yes/no form ('yes' or 'no'), empty for an open question."""

    __tablename__ = "kb_fact_questions"
    id = Column(Integer, primary_key=True, autoincrement=True)
    fact_id = Column(String(80), ForeignKey("kb_facts.id"), nullable=False, index=True)
    text = Column(Text, nullable=False)
    polarity = Column(String(8), nullable=False, default="")


class UncoveredExample(Base):
    """A question the article does not answer, as people ask it: a question closer to
    these than to any fact's question form is taken as not covered."""

    __tablename__ = "kb_uncovered_examples"
    id = Column(Integer, primary_key=True, autoincrement=True)
    text = Column(Text, nullable=False)


class UncoveredRule(Base):
    """A kind of question the article does not answer (another role, an employer, working
    conditions ...), recognised by regular expressions on the question itself."""

    __tablename__ = "kb_uncovered_rules"
    key = Column(String(40), primary_key=True)
    position = Column(Integer, nullable=False)
    patterns = Column(Text, nullable=False)  # JSON list of regular expressions
    unless = Column(Text, nullable=False, default="[]")  # JSON list: any match cancels the rule
    reply = Column(Text, nullable=False)
    offer = Column(String(40), nullable=False, default="best")  # best | none | a topic key


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
