"""From ranked facts to the reply: what leads, what is said to be not covered, the source.

Plain Python, no Rasa and no database: a `Composer` works on one loaded knowledge
version (query.py builds it) and returns `Answer`s. The order of a reply is fixed:
    1. what the article does not answer, if the question asks for that (said first),
    2. the direct answer to a yes/no question ("Ja." / "Nein."),
    3. the fact or facts asked for, or, after 1., what the article does say, labelled,
    4. the source line naming the article's sections.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

from revierlotse.kb.lexical import fold, is_elliptic, question_part
from revierlotse.kb.selection import Scored, has_negation, is_yes_no_question
from revierlotse.kb.source import BAND_REF
from revierlotse.kb.uncovered import Rule, find_uncovered

HOME_PLACE = "duisburg"  # canonical value of every Duisburg/Ruhr place (data/nlu/entities.yml)
MAX_FACTS = 4
# Words that make a question about another place one about its figures (not covered).
_FIGURES = re.compile(r"verdien|gehalt|gehalter|lohn|lohne|bezahl|euro|€|brutto|netto|\bzahl|wie viele|kosten|miete|preis")


@dataclass(frozen=True)
class FactRow:
    id: str
    kind: str  # fact | overview
    topic: str
    section: int
    text: str
    includes: Tuple[str, ...] = ()
    keywords: Tuple[str, ...] = ()
    places: Tuple[str, ...] = ()
    qualifiers: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)


@dataclass(frozen=True)
class Thresholds:
    """Calibrated on the development set with `make eval` (see docs/answer-quality.md)."""

    answer_min: float = 1.0  # below: no fact answers the question; say so
    offer_min: float = 1.0  # after "not covered", offer the best item only above this
    second_margin: float = 0.06  # a second fact joins when it scores this close to the first
    yes_no_min: float = 0.72  # the closest yes/no form must be this similar to lead with Ja/Nein
    # A question with words the knowledge never uses is taken as not covered unless its
    # closest question form is at least this similar (0 switches the check off).
    unfamiliar_semantic_min: float = 0.5
    # A question this similar to a not-covered example, and closer to it than to any
    # question form (by the margin), is taken as not covered.
    uncovered_example_min: float = 0.75
    uncovered_margin: float = 0.0
    # A clause of a message asking about another topic too gets its own answer above this.
    clause_min: float = 1.3


@dataclass(frozen=True)
class Answer:
    """What the bot says, and what it rests on."""

    topic: str
    text: str
    sections: Tuple[int, ...]
    entry_ids: Tuple[str, ...]  # the facts given as the answer
    qualifiers: Dict[str, str] = field(default_factory=dict)  # qualifiers the answer was shaped by
    uncovered: Optional[str] = None  # why the article does not answer: rule key, 'other_place', 'unknown'
    lead: Optional[str] = None  # 'yes' | 'no' for a yes/no question answered directly
    offered: Tuple[str, ...] = ()  # facts offered (labelled) after saying what is not covered
    needs_menu: bool = False  # nothing offered: the topic menu should follow


class Composer:
    def __init__(self, facts: Dict[str, FactRow], bands: Mapping, replies: Mapping[str, str],
                 meta: Mapping[str, str], sections: Mapping[int, str], rules: Sequence[Rule],
                 thresholds: Thresholds) -> None:
        self.facts = facts
        self.bands = bands
        self.replies = replies
        self.meta = meta
        self.sections = sections
        self.rules = rules
        self.t = thresholds

    # -- kinds of answers ------------------------------------------------------
    def for_question(self, question: str, ranked: List[Scored], topic_prior: Mapping[str, float],
                     qualifiers: Mapping[str, Optional[str]], place: Optional[str],
                     previous_topic: Optional[str] = None, mentioned: Sequence[str] = (),
                     unfamiliar: Sequence[str] = ()) -> Answer:
        """`mentioned`: qualifier names the question itself states ("mit Teamleitung"):
        facts of the answer's topic meant for those join it. `unfamiliar`: the
        question's words that the knowledge never uses."""
        top = ranked[0]
        asked = question_part(question)  # rules and places judge what is asked, not the context
        if place and fold(place) not in fold(asked):
            place = None
        if place and place.lower() != HOME_PLACE:
            compared = self._place_comparison(question, ranked, place.lower(), topic_prior, previous_topic)
            if compared is not None:
                return self._answer([compared.id], compared.topic)
            said = self.replies["other_place"].format(place=place[:1].upper() + place[1:])
            return self._not_covered("other_place", said, ranked, "best")
        uncovered = find_uncovered(asked, self.rules)
        if uncovered is not None:
            said = uncovered.rule.reply.format(match=uncovered.match)
            return self._not_covered(uncovered.rule.key, said, ranked, uncovered.rule.offer)
        if top.score < self.t.answer_min:
            if previous_topic and is_elliptic(question):  # "und später?": the last topic, generally
                return self.for_topic(previous_topic, qualifiers)
            return Answer(top.item.topic, self.replies["no_answer"], (), (), uncovered="unknown", needs_menu=True)
        if unfamiliar and top.semantic < self.t.unfamiliar_semantic_min:
            return self._not_covered("unknown", self.replies["no_answer"], ranked, "best")
        near_uncovered = getattr(ranked, "uncovered_similarity", 0.0)
        if near_uncovered >= self.t.uncovered_example_min and near_uncovered > top.semantic + self.t.uncovered_margin:
            return self._not_covered("unknown", self.replies["no_answer"], ranked, "best")
        if top.item.kind == "overview":
            return self.for_topic(top.item.topic, qualifiers)
        ids = [top.item.id]
        if len(ranked) > 1:
            second = ranked[1]
            if (second.item.kind == "fact" and second.item.topic == top.item.topic
                    and second.score >= top.score - self.t.second_margin):
                ids.append(second.item.id)
        ids += [f.id for f in self._facts_of(top.item.topic) if self._fits(f, qualifiers, mentioned)]
        ids = list(dict.fromkeys(ids))[:MAX_FACTS]
        lead = None
        if (top.polarity and top.form_similarity >= self.t.yes_no_min and is_yes_no_question(question)
                and not has_negation(question)):
            lead = top.polarity
        return self._answer(ids, top.item.topic, lead=lead)

    def for_topic(self, topic: str, qualifiers: Mapping[str, Optional[str]]) -> Answer:
        overview = next((f for f in self.facts.values() if f.kind == "overview" and f.topic == topic), None)
        if overview is None:
            raise KeyError(f"no overview for topic {topic!r}")
        fitting = [f.id for f in self._facts_of(topic) if self._fits(f, qualifiers)]
        ids = list(dict.fromkeys([*fitting, *overview.includes]))[:MAX_FACTS]
        intro = "" if fitting else overview.text
        return self._answer(ids, topic, intro=intro, qualifiers=qualifiers)

    def for_follow_up(self, topic: str, mentioned: Sequence[str],
                      qualifiers: Mapping[str, Optional[str]]) -> Optional[Answer]:
        facts = self._facts_of(topic)
        ids = [f.id for f in facts if self._fits(f, qualifiers, mentioned)]
        if not ids:
            return None
        ids += [f.id for f in facts if self._fits(f, qualifiers)]  # what else fits the user stays
        return self._answer(list(dict.fromkeys(ids))[:MAX_FACTS], topic, qualifiers=qualifiers)

    def facts_answer(self, ids: Sequence[str], topic: str) -> Answer:
        return self._answer(list(ids), topic)

    def source_hint(self, sections: Sequence[int]) -> str:
        refs = " und ".join(f"{n} „{self.sections[n]}“" for n in dict.fromkeys(sections))
        return self.meta["source_hint"].format(title=self.meta["source_title"], sections=refs)

    # -- helpers ---------------------------------------------------------------
    def _facts_of(self, topic: str) -> List[FactRow]:
        return [f for f in self.facts.values() if f.kind == "fact" and f.topic == topic]

    @staticmethod
    def _fits(fact: FactRow, qualifiers: Mapping[str, Optional[str]], names: Optional[Sequence[str]] = None) -> bool:
        """Whether `fact` is meant for a user described by `qualifiers` (only `names` count, if given)."""
        return any(qualifiers.get(n) in values for n, values in fact.qualifiers.items() if names is None or n in names)

    def _place_comparison(self, question: str, ranked: List[Scored], place: str,
                          topic_prior: Mapping[str, float], previous_topic: Optional[str]) -> Optional[FactRow]:
        """A fact comparing Duisburg with `place`, when the question asks for the
        comparison and not for that place's own figures (nor follows a salary answer)."""
        if _FIGURES.search(fold(question)) or topic_prior.get("salary", 0.0) >= 0.5:
            return None
        if previous_topic == "salary" and len(question.split()) <= 4:  # "und in Berlin?" after the bands
            return None
        place = fold(place)
        comparing = [f for f in self.facts.values() if f.kind == "fact" and place in (fold(p) for p in f.places)]
        leaders = [self.facts[s.item.id] for s in ranked]
        return next((f for f in leaders if f in comparing), comparing[0] if comparing else None)

    def _not_covered(self, reason: str, said: str, ranked: List[Scored], offer: str) -> Answer:
        said = said.strip()
        offered: List[str] = []
        if offer == "best":
            best = next((s for s in ranked if s.score >= self.t.offer_min), None)
            if best is not None:
                item = self.facts[best.item.id]
                offered = list(item.includes) if item.kind == "overview" else [item.id]
        elif offer != "none":
            overview = next((f for f in self.facts.values() if f.kind == "overview" and f.topic == offer), None)
            offered = list(overview.includes) if overview else []
        topic = ranked[0].item.topic
        if not offered:
            return Answer(topic, said, (), (), uncovered=reason, needs_menu=True)
        body, sections = self._render(offered[:MAX_FACTS])
        text = f"{said}\n\n{self.replies['offer_label'].strip()}\n{body}\n\n{self.source_hint(sections)}"
        return Answer(self.facts[offered[0]].topic, text, sections, (), uncovered=reason, offered=tuple(offered))

    def _answer(self, ids: List[str], topic: str, intro: str = "", lead: Optional[str] = None,
                qualifiers: Mapping[str, Optional[str]] = {}) -> Answer:  # noqa: B006 - read only
        body, sections = self._render(ids)
        if intro:
            body = f"{intro}\n{body}"
        if lead:
            body = f"{self.replies['yes_lead' if lead == 'yes' else 'no_lead'].strip()} {body}"
        shaped_by = {
            name: value for name, value in qualifiers.items()
            if value and any(value in self.facts[i].qualifiers.get(name, ()) for i in ids)
        }
        return Answer(topic, f"{body}\n\n{self.source_hint(sections)}", sections, tuple(ids),
                      qualifiers=shaped_by, lead=lead)

    def _render(self, ids: Sequence[str]) -> Tuple[str, Tuple[int, ...]]:
        def band(match) -> str:
            b = self.bands[match.group(1)]
            return self.meta[f"band_format_{b.period}"].format(min=_euro(b.min_eur), max=_euro(b.max_eur))

        texts = [BAND_REF.sub(band, self.facts[i].text) for i in ids]
        body = texts[0] if len(texts) == 1 else "\n".join(f"• {t}" for t in texts)
        return body, tuple(dict.fromkeys(self.facts[i].section for i in ids))


def _euro(amount: int) -> str:
    return f"{amount:,}".replace(",", ".")
