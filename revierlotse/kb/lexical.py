"""Words of a German question, reduced so that inflected forms meet: plain Python.

    terms("Läuft in den Betrieben noch Uralt-Software?")
    -> ['lauf', 'betrieb', 'uralt', 'software']

Lower case, umlauts folded (ä -> a, ß -> ss), split at anything that is not a letter
or digit (so "Uralt-Software" gives both parts), stop words dropped, and a light
suffix stemmer: German inflection mostly changes word endings, and a question says
"Betrieben" where the fact's question form says "Betrieb". The stemmer is deliberately
crude; it only has to make the same word meet itself.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from typing import Iterable, List, Sequence

import numpy as np

_FOLD = str.maketrans({"ä": "a", "ö": "o", "ü": "u", "ß": "ss", "é": "e"})
_WORD = re.compile(r"[a-z0-9]+")

# Function words and chat filler: they say nothing about which fact is asked for.
STOP_WORDS = frozenset(
    """
    a ab aber alle allem allen aller alles als also am an andere anderen auch auf aus bei beim bin bis bist
    bitte bzw da dabei dafur damit dann darf das dass dazu dem den denen denn der des dessen dich die dies
    diese diesem diesen dieser dir do doch dort du durch eher ein eine einem einen einer eines er es etwa
    etwas euch euer fur gibt gern gerne gibts hab habe haben hast hat hatte hier ich ihm ihn ihnen ihr ihre
    im in ins is ist ja jemand jetzt kann kannst konnen konnte man mal mehr mich mir mit muss musst nach
    nicht noch nun nur ob oder ohne sehr sein seine sich sie sind so soll sollte sollen uber um und uns
    unser vom von vor war waren was weil welche welchen welcher welches wenn wer werde werden wie wieso
    wird wirklich wo wohl worauf woran wozu wurde wurden zu zum zur zwar n nen ne hallo hi hey moin
    eigentlich denn genau so also okay ok
    it manager duisburg
    """.split()
)

_SUFFIXES = ("ungen", "heiten", "keiten", "innen", "ern", "em", "en", "er", "es", "e", "n", "s")


# Where one message asks a second question ("Was verdient man? Und welche Zertifikate ...").
CLAUSE_BREAK = re.compile(r"[?;!]|\b(?:und|sowie|außerdem|ausserdem|zudem|plus)\b", re.IGNORECASE)


def clauses(text: str) -> List[str]:
    """The parts of `text` that could be questions of their own (at least two words)."""
    return [c.strip(" ,.") for c in CLAUSE_BREAK.split(text) if len(c.split()) >= 2]


# The job and the place every question is about. Nearly every question and question
# form names them, so for the sentence encoder they are noise that makes "Wie wird man
# IT Manager in Duisburg?" look like any other question naming them.
_DOMAIN = re.compile(
    r"\b(als |zum |zur |ein |einen |eine )?(it[- ]?manager(in|innen|s)?|it[- ]?management|it[- ]?leiter(in)?)\b"
    r"|\b(hier |dort |da )?(in|im|aus|um) (duisburg|ruhrgebiet|ruhrpott|pott|revier)\b"
    r"|\bduisburger\b",
    re.IGNORECASE,
)


def without_domain(text: str) -> str:
    """`text` without the job title and the region (see _DOMAIN); the text itself
    when nothing else would remain."""
    stripped = " ".join(_DOMAIN.sub(" ", text).split())
    return stripped if len(stripped.split()) >= 1 and re.search(r"\w", stripped) else text


_SENTENCE_END = re.compile(r"(?<=[.!?:])\s+")


def question_part(text: str) -> str:
    """The part of a message that asks, without the context the asker gives first:
    "Ich bin Headhunter. Wo liegt die Einstiegsspanne?" -> "Wo liegt die Einstiegsspanne?".

    The sentences ending in "?" when there are others before them; the whole text when
    it has no such sentence or the question is too short to stand alone ("Und du?").
    """
    parts = [p.strip() for p in _SENTENCE_END.split(text.strip()) if p.strip()]
    asking = [p for p in parts if p.endswith("?")]
    if not asking or len(asking) == len(parts):
        return text
    question = " ".join(asking)
    return question if len(terms(question)) >= 2 else text


def fold(text: str) -> str:
    """Lower case with umlauts and ß folded: the form all matching works on."""
    return text.lower().translate(_FOLD)


def stem(word: str) -> str:
    """A crude German stem: the word without one common inflection ending."""
    for suffix in _SUFFIXES:
        if len(word) - len(suffix) >= 4 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


# Content words up to which a follow-up leans on the last answer ("und später?").
ELLIPTIC_TERMS = 2


def is_elliptic(question: str) -> bool:
    """A follow-up that leans on the last answer ("und im Mittelstand?")."""
    return len(terms(question)) <= ELLIPTIC_TERMS


def terms(text: str) -> List[str]:
    """The stemmed content words of `text`, in order."""
    return [stem(w) for w in _WORD.findall(fold(text)) if w not in STOP_WORDS and len(w) > 1]


class LexicalIndex:
    """BM25-style overlap between a question and each item's bag of words.

    An item's bag holds its question forms and text; its keywords count several
    times. Scores are divided by the question's own best possible score, so they lie in
    0..1 whatever the question's length. The weights of every (item, word) pair are
    computed once, as one small matrix, so a question costs one column sum.
    """

    def __init__(self, bags: Sequence[Iterable[str]], k1: float = 1.2, b: float = 0.5) -> None:
        counted = [Counter(bag) for bag in bags]
        n = max(len(counted), 1)
        df: Counter = Counter(t for bag in counted for t in bag)
        self._column = {t: i for i, t in enumerate(df)}
        self._idf = np.array([math.log(1 + (n - d + 0.5) / (d + 0.5)) for d in df.values()])
        lengths = [sum(bag.values()) for bag in counted]
        avg = (sum(lengths) / n) or 1.0
        self._weights = np.zeros((len(counted), len(df)))
        for row, (bag, length) in enumerate(zip(counted, lengths)):
            norm = k1 * (1 - b + b * length / avg)
            for t, f in bag.items():
                col = self._column[t]
                self._weights[row, col] = self._idf[col] * f * (k1 + 1) / (f + norm)
        self._k1 = k1

    def scores(self, question_terms: Sequence[str]) -> np.ndarray:
        cols = [self._column[t] for t in dict.fromkeys(question_terms) if t in self._column]
        if not cols:
            return np.zeros(self._weights.shape[0])
        return self._weights[:, cols].sum(axis=1) / ((self._k1 + 1) * self._idf[cols].sum())
