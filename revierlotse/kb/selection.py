"""Which fact answers this question: ranking the knowledge for one user question.

Plain Python and numpy, no Rasa. Every fact (one claim of the article) and every topic
overview (for general questions) comes with several question forms in our own
wording. A user's question is scored against each item by

    weights.semantic * (best cosine similarity of the question to the item's forms)
  + weights.lexical  * (BM25-style word overlap with the item's forms, text, keywords)
  + weights.topic    * (the NLU's probability for the item's topic)
  + weights.qualifier  (when the item is meant for users like this one)

The sentence encoder carries paraphrase, the word overlap carries the cue words the
encoder blurs (langweilig, 90er, Azure), and the topic prior the classifier's view of
the whole training set. Measured with `make eval`; the weights are calibrated there on
the development set, never on the held-out one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

from revierlotse.kb.lexical import ELLIPTIC_TERMS, LexicalIndex, fold, terms, without_domain

Encoder = Callable[[List[str]], np.ndarray]

# First words of a German yes/no question ("Ist die Arbeit öde?", "Kann man ...").
_YES_NO_START = re.compile(
    r"^(ist|sind|war|waren|wird|werden|wurde|kann|kannst|konnen|konnte|gibt|gab|hat|haben|hast|habe|muss|"
    r"musst|mussen|braucht|brauche|brauchst|brauchen|lohnt|verdient|verdiene|verdienen|bekommt|bekomme|"
    r"lauft|laufen|zahlt|zahlen|sollte|soll|sollen|darf|durfen|stimmt|geht|bringt|bringen|hilft|passt|bin|"
    r"bist|ware|waren|wurde|wurdest|gilt|fallt|reicht|reichen|bleibt|bleiben|sitzen|sitzt|dominieren|"
    r"herrscht|steckt|findet|finde|spielt|spielen|investieren|investiert|nimmt|verlangt|erwartet|lasst|"
    r"macht|mochte|mag|nervt|klappt)\b"
)
_INDIRECT_YES_NO = re.compile(r"\b(ob|stimmt es|oder nicht)\b|, oder\s*\??$")
RANKED = 12  # items `rank` returns: the reply needs the leaders only
FAMILIAR_PREFIX = 5  # letters a word shares with a known one to count as familiar
_NEGATION = re.compile(r"\b(nicht|kein|keine|keinen|keiner|nie)\b")


@dataclass(frozen=True)
class Weights:
    semantic: float = 1.0
    lexical: float = 1.5
    topic: float = 0.45
    qualifier: float = 0.12
    # Follow-ups lean on the topic of the last answer; elliptic ones ("und später?",
    # "und wie viel ist das dann?": at most two content words) lean on it harder.
    previous_topic: float = 0.08
    previous_topic_elliptic: float = 0.4
    # Added to topic overviews: their general question forms resemble many specific
    # questions, so a negative value lets a fitting fact win.
    overview: float = 0.0


@dataclass(frozen=True)
class Item:
    """A fact or an overview as the ranking sees it."""

    id: str
    kind: str  # fact | overview
    topic: str
    questions: Tuple[Tuple[str, str], ...]  # (question form, polarity '' | 'yes' | 'no')
    text: str = ""
    keywords: Tuple[str, ...] = ()
    qualifiers: Mapping[str, Tuple[str, ...]] = field(default_factory=dict)


class Ranking(list):
    """The leading items, best first, and how close the question came to a question
    the article does not answer (`uncovered_similarity`, cosine)."""

    def __init__(self, items=(), uncovered_similarity: float = 0.0) -> None:
        super().__init__(items)
        self.uncovered_similarity = uncovered_similarity


@dataclass(frozen=True)
class Scored:
    item: Item
    score: float
    semantic: float
    lexical: float
    polarity: str  # the honest answer ('yes' | 'no') of the item's closest yes/no question form
    form_similarity: float  # that form's similarity to the question


def is_yes_no_question(question: str) -> bool:
    text = fold(question).strip().lstrip("¿¡\"'„ ")
    text = re.sub(r"^(und|aber|also|sag mal|mal ehrlich|ehrlich|hallo|hi|moin|na)[,!:]?\s+", "", text)
    return bool(_YES_NO_START.match(text) or _INDIRECT_YES_NO.search(text))


def has_negation(question: str) -> bool:
    return bool(_NEGATION.search(fold(question)))


class FactIndex:
    """Question-form embeddings and word statistics of one knowledge version.

    Built once per loaded knowledge (the snapshot's content hash), so an edit to the
    question forms plus `make kb` changes the ranking without any training.
    """

    def __init__(self, items: Sequence[Item], encode: Encoder, uncovered_examples: Sequence[str] = ()) -> None:
        self.items = list(items)
        forms = [(i, q, pol) for i, item in enumerate(self.items) for q, pol in item.questions]
        if not forms:
            raise ValueError("no question forms to rank by")
        self._form_item = np.array([i for i, _, _ in forms])
        self._form_polarity = [pol for _, _, pol in forms]
        self._starts = np.searchsorted(self._form_item, np.arange(len(self.items)))
        self._ends = np.append(self._starts[1:], len(forms))
        self._topics = np.array([item.topic for item in self.items])
        self._topic_names = sorted(set(self._topics))
        self._topic_number = {t: i for i, t in enumerate(self._topic_names)}
        self._topic_of_item = np.array([self._topic_number[t] for t in self._topics])
        self._qualified = [i for i, item in enumerate(self.items) if item.qualifiers]
        self._is_overview = np.array([item.kind == "overview" for item in self.items], dtype=np.float32)
        vectors = np.asarray(encode([without_domain(q) for _, q, _ in forms]), dtype=np.float32)
        self._vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
        centroids = np.add.reduceat(self._vectors, self._starts)
        self._centroids = centroids / np.maximum(np.linalg.norm(centroids, axis=1, keepdims=True), 1e-6)
        self._encode = encode
        self._examples = (
            _unit(np.asarray(encode([without_domain(q) for q in uncovered_examples]), dtype=np.float32))
            if uncovered_examples else np.zeros((0, self._vectors.shape[1]), dtype=np.float32)
        )
        bags = []
        for item in self.items:
            bag = [t for q, _ in item.questions for t in terms(q)] + terms(item.text)
            bag += [t for k in item.keywords for t in terms(k)] * 3
            bags.append(bag)
        self._lexical = LexicalIndex(bags)
        self._vocabulary = {t for bag in bags for t in bag}
        self._prefixes = {t[:FAMILIAR_PREFIX] for t in self._vocabulary if len(t) >= FAMILIAR_PREFIX}

    def unfamiliar_terms(self, question: str) -> List[str]:
        """Content words of `question` that no fact, overview or question form uses, not
        even as a word of the same beginning ("Zertis" meets "Zertifikat"): a sign that
        it asks for something the article does not talk about."""
        return [
            t for t in terms(question)
            if len(t) >= 4 and not t.isdigit() and t not in self._vocabulary
            and t[:FAMILIAR_PREFIX] not in self._prefixes
        ]

    def rank(
        self,
        question: str,
        topic_prior: Mapping[str, float],
        qualifiers: Mapping[str, Optional[str]] = {},  # noqa: B006 - read only
        previous_topic: Optional[str] = None,
        weights: Weights = Weights(),
    ) -> "Ranking":
        """The RANKED best items, best first."""
        vector = np.asarray(self._encode([without_domain(question)]), dtype=np.float32)[0]
        vector /= max(float(np.linalg.norm(vector)), 1e-6)
        sims = self._vectors @ vector
        uncovered = float((self._examples @ vector).max()) if len(self._examples) else 0.0
        semantic = np.maximum.reduceat(sims, self._starts)
        words = terms(question)
        lexical = self._lexical.scores(words)
        scores = weights.semantic * semantic + weights.lexical * lexical
        prior = np.zeros(len(self._topic_names) + 1)
        for topic, p in topic_prior.items():
            prior[self._topic_number.get(topic, -1)] = p  # unknown topics land in the spare last slot
        prior[-1] = 0.0
        scores += weights.topic * prior[self._topic_of_item]
        if previous_topic:
            lean = weights.previous_topic_elliptic if len(words) <= ELLIPTIC_TERMS else weights.previous_topic
            scores += lean * (self._topics == previous_topic)
        scores += weights.overview * self._is_overview
        for i in self._qualified:
            if any(qualifiers.get(name) in values for name, values in self.items[i].qualifiers.items()):
                scores[i] += weights.qualifier
        order = np.argsort(-scores, kind="stable")[:RANKED]
        ranked = Ranking(uncovered_similarity=uncovered)
        for rank, i in enumerate(order):
            polarity, similarity = "", 0.0
            if rank < 3:  # only the leaders can lead with "Ja." / "Nein."
                polar = [k for k in range(self._starts[i], self._ends[i]) if self._form_polarity[k]]
                if polar:  # the closest yes/no form gives the direct answer
                    best_form = max(polar, key=lambda k: sims[k])
                    polarity, similarity = self._form_polarity[best_form], float(sims[best_form])
            ranked.append(Scored(self.items[i], float(scores[i]), float(semantic[i]), float(lexical[i]),
                                 polarity, similarity))
        return ranked

    def continuations(self, question: str, topic: str, last: Optional[str], shown: Set[str]) -> List[str]:
        """Fact ids of `topic` not in `shown`, best continuation first: similar to the
        user's words and to the fact shown last (its question forms' centroid)."""
        vector = np.asarray(self._encode([without_domain(question)]), dtype=np.float32)[0]
        vector /= max(float(np.linalg.norm(vector)), 1e-6)
        by_question = np.maximum.reduceat(self._vectors @ vector, self._starts)
        by_last = np.zeros(len(self.items), dtype=np.float32)
        position = {item.id: i for i, item in enumerate(self.items)}
        if last in position:
            by_last = self._centroids @ self._centroids[position[last]]
        candidates = [
            i for i, item in enumerate(self.items)
            if item.kind == "fact" and item.topic == topic and item.id not in shown
        ]
        candidates.sort(key=lambda i: -(by_question[i] + by_last[i]))
        return [self.items[i].id for i in candidates]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-6)
