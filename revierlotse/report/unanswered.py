"""Questions the bot could not answer: personal data masked, similar ones grouped.

Grouping: texts are masked, normalised (lower case, no punctuation), identical ones
merged, and the rest clustered by cosine distance of TF-IDF character n-grams
(robust to German inflection and compounds: "Gehalt"/"Gehälter", "Wetter heute"/
"Wetter morgen") with average linkage, cut at `GROUP_DISTANCE`.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from typing import Dict, Iterable, List, Tuple

# Cosine distance below which two questions share a group (tuned on the test questions).
GROUP_DISTANCE = 0.7
MAX_VARIANTS = 5
# Distinct questions clustered (most frequent first); rarer ones stay single groups, so
# memory (n x n distances) and time stay bounded on a busy bot.
MAX_CLUSTERED = 3000

EMAIL_MASK, LINK_MASK, PHONE_MASK, IBAN_MASK, NUMBER_MASK = "[E-Mail]", "[Link]", "[Telefon]", "[IBAN]", "[Nummer]"

_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+", re.UNICODE)
_LINK = re.compile(r"\b(?:https?://|www\.)\S+", re.IGNORECASE)
_IBAN = re.compile(r"\b[A-Z]{2}\d{2}(?:[ ]?[A-Z0-9]{4}){3,7}(?:[ ]?[A-Z0-9]{1,3})?\b", re.IGNORECASE)
# Phone numbers: optional +/00 country prefix, then digits with spaces / - ( ) . between,
# at least 7 digits in all (so "4.200 bis 5.200" or "2025" stay readable).
_PHONE = re.compile(r"(?<![\w])(?:\+|00)?\(?\d(?:[\s/().-]{0,3}\d){6,}")
# Any other long digit run (customer numbers, chat ids, dates of birth written as digits).
_LONG_NUMBER = re.compile(r"\d{7,}")
_NON_WORD = re.compile(r"[^\w\[\]]+", re.UNICODE)


def mask_personal_data(text: str) -> str:
    """`text` with e-mail addresses, links, IBANs and phone / long numbers replaced by placeholders."""
    text = _EMAIL.sub(EMAIL_MASK, text)
    text = _LINK.sub(LINK_MASK, text)
    text = _IBAN.sub(IBAN_MASK, text)
    text = _PHONE.sub(PHONE_MASK, text)
    return _LONG_NUMBER.sub(NUMBER_MASK, text)


def normalise(text: str) -> str:
    """Lower case, NFKC, punctuation removed, single spaces: the key for identical questions."""
    text = unicodedata.normalize("NFKC", text).lower()
    return _NON_WORD.sub(" ", text).strip()


@dataclass
class QuestionGroup:
    """Similar unanswered questions: the most frequent wording, how often, why unanswered."""

    text: str
    count: int
    variants: List[Tuple[str, int]] = field(default_factory=list)  # other wordings, most frequent first
    reasons: Dict[str, int] = field(default_factory=dict)  # reason -> messages


def _clusters(keys: List[str]) -> List[int]:
    """A cluster number for each normalised question."""
    if len(keys) < 2:
        return [0] * len(keys)
    from scipy.cluster.hierarchy import fcluster, linkage
    from scipy.spatial.distance import squareform
    from sklearn.feature_extraction.text import TfidfVectorizer

    # Rows are L2-normalised, so the sparse product is the cosine similarity.
    vectors = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 5), sublinear_tf=True).fit_transform(keys)
    distances = (1.0 - (vectors @ vectors.T).toarray()).clip(0.0, 1.0)
    tree = linkage(squareform(distances, checks=False), method="average")
    return [int(c) for c in fcluster(tree, t=GROUP_DISTANCE, criterion="distance")]


def group_questions(questions: Iterable[Tuple[str, str]]) -> List[QuestionGroup]:
    """Group `(text, reason)` pairs; biggest group first. Texts are masked here."""
    wordings: Dict[str, Counter] = {}  # normalised key -> Counter of masked wordings
    reasons: Dict[str, Counter] = {}
    for text, reason in questions:
        masked = mask_personal_data(" ".join(text.split()))
        key = normalise(masked)
        if not key:
            continue
        wordings.setdefault(key, Counter())[masked] += 1
        reasons.setdefault(key, Counter())[reason] += 1

    keys = sorted(wordings, key=lambda k: (-sum(wordings[k].values()), k))
    clustered, rest = keys[:MAX_CLUSTERED], keys[MAX_CLUSTERED:]
    members: Dict[int, List[str]] = {}
    for key, cluster in zip(clustered, _clusters(clustered)):
        members.setdefault(cluster, []).append(key)
    for n, key in enumerate(rest):
        members[-1 - n] = [key]

    groups = []
    for cluster_keys in members.values():
        texts: Counter = Counter()
        why: Counter = Counter()
        for key in cluster_keys:
            texts.update(wordings[key])
            why.update(reasons[key])
        ranked = sorted(texts.items(), key=lambda item: (-item[1], len(item[0]), item[0]))
        groups.append(
            QuestionGroup(
                text=ranked[0][0],
                count=sum(texts.values()),
                variants=ranked[1 : 1 + MAX_VARIANTS],
                reasons=dict(sorted(why.items())),
            )
        )
    groups.sort(key=lambda g: (-g.count, g.text))
    return groups
