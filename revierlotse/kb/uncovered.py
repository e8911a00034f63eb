"""Recognising questions the article does not answer, from the question itself.

A question can be on topic and still not covered: "Was verdient ein Systemadministrator?"
is a salary question about another job. The rules live in the knowledge source
(`not_covered:`), each a list of regular expressions on the folded question text
(lower case, umlauts folded: see `lexical.fold`), an `unless` list that cancels the rule
(the role named is the asker's background, not the subject) and the reply that says so.
A pattern's group named `m`, where it has one, is what the reply names ({match}).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional, Sequence, Tuple

from revierlotse.kb.lexical import fold


@dataclass(frozen=True)
class Rule:
    key: str
    patterns: Tuple["re.Pattern[str]", ...]
    unless: Tuple["re.Pattern[str]", ...]
    reply: str  # may contain {match}: what the question named, as the user wrote it
    offer: str  # best | none | a topic key


@dataclass(frozen=True)
class Uncovered:
    """A question the article does not answer: which rule said so, and what it named."""

    rule: Rule
    match: str


def compile_rule(key: str, patterns: Sequence[str], unless: Sequence[str], reply: str, offer: str) -> Rule:
    return Rule(key, tuple(re.compile(p) for p in patterns), tuple(re.compile(p) for p in unless), reply, offer)


def find_uncovered(question: str, rules: Sequence[Rule]) -> Optional[Uncovered]:
    """The first rule (in source order) that recognises `question`, or None.

    Folding keeps the text's length, so a match's span also cuts the user's own
    spelling out of the original question for the reply.
    """
    folded = fold(question)
    if len(folded) != len(question):  # a character that folds to two (ß): no spans
        question = folded
    for rule in rules:
        if any(u.search(folded) for u in rule.unless):
            continue
        for pattern in rule.patterns:
            found = pattern.search(folded)
            if found:
                group = "m" if "m" in pattern.groupindex and found.group("m") else 0
                return Uncovered(rule, question[found.start(group):found.end(group)].strip())
    return None
