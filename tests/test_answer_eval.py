"""The answer-level evaluation (`make eval`) holds a floor on the development set.

The set was written blind (tests/eval/dev.yml); the replies come from the running bot
over REST and are judged by their text. The floor sits below the last measured figures
(docs/answer-quality.md), so it catches regressions without being a moving target.
"""

from __future__ import annotations

import pytest

from revierlotse.evaluation.answers import SETS, evaluate, judge_for, load_set, rest_sender
from revierlotse.kb import KnowledgeBase

pytestmark = pytest.mark.e2e

ACCURACY_FLOOR = 0.84
MISLEADING_CEILING = 0.05


def test_answers_on_the_development_set_hold_the_floor(bot, kb_url):
    report = evaluate(load_set(SETS["dev"]), rest_sender(bot.url), judge_for(KnowledgeBase.from_url(kb_url)))
    figures = report.figures()
    assert figures["turns"] >= 400
    assert figures["answer_accuracy"] >= ACCURACY_FLOOR, figures
    assert figures["misleading_rate"] <= MISLEADING_CEILING, figures


def test_the_judge_reads_abstention_and_facts_from_the_reply_text(kb_url):
    judge = judge_for(KnowledgeBase.from_url(kb_url))
    kb = KnowledgeBase.from_url(kb_url)
    [fact] = kb.answer_question("Welche Zertifizierungen sind gefragt?")
    assert "certifications-areas" in judge.facts_in(fact.text) and not judge.abstains(fact.text)
    [gap] = kb.answer_question("Gibt es Gleitzeit?")
    assert judge.abstains(gap.text) and judge.facts_in(gap.text) == ()
