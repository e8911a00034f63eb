"""Which sentences of the article no fact covers: `make kb-coverage ARTICLE=path/to/article.txt`.

Every statement of the article a person could ask about should be a fact in
data/knowledge/facts.yml. This check splits the article into sentences (and long
sentences into clauses), finds for each the closest fact text (sentence encoder plus
word overlap) and lists the ones whose closest fact is far off, with that fact, so an
editor can see what is missing. It prints a review list and exits 0; `--strict` makes
it exit 1 when anything is listed. The article itself is not part of the repository:
the editor passes its path.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from revierlotse.kb.lexical import terms
from revierlotse.kb.source import BAND_REF, read_source
from revierlotse.settings import PROJECT_ROOT

SENTENCE = re.compile(r"(?<=[.!?])\s+|\n+")
CLAUSE = re.compile(r"\s+[–-]\s+|;\s+|:\s+")
MIN_WORDS = 5  # shorter pieces are headings or asides
COVERED = 0.25  # combined similarity from which a piece counts as covered (metaphors score low: review the list)


@dataclass(frozen=True)
class Piece:
    text: str
    fact: str
    similarity: float


def pieces(article: str) -> List[str]:
    """The article's sentences, long ones cut at dashes, colons and semicolons."""
    out = []
    for sentence in SENTENCE.split(article):
        parts = CLAUSE.split(sentence) if len(sentence.split()) > 18 else [sentence]
        out += [p.strip() for p in parts if len(p.split()) >= MIN_WORDS]
    return out


def closest_facts(texts: Sequence[str], facts: Dict[str, str], encode: Callable) -> List[Piece]:
    ids = list(facts)
    fact_vectors = encode([facts[i] for i in ids])
    fact_terms = [set(terms(facts[i])) for i in ids]
    result = []
    for text, vector in zip(texts, encode(list(texts))):
        words = set(terms(text))
        overlap = np.array([len(words & ft) / max(len(words), 1) for ft in fact_terms])
        combined = 0.6 * (fact_vectors @ vector) + 0.4 * overlap
        best = int(np.argmax(combined))
        result.append(Piece(text, ids[best], float(combined[best])))
    return result


def uncovered(article: str, source: Path, encode: Optional[Callable] = None) -> List[Piece]:
    """The article's pieces whose closest fact is below COVERED, weakest first."""
    if encode is None:
        from revierlotse.nlu.encoder import encode
    src = read_source(source)
    facts = {f["id"]: BAND_REF.sub("", f["text"]) for f in src.facts}
    found = closest_facts(pieces(article), facts, encode)
    return sorted((p for p in found if p.similarity < COVERED), key=lambda p: p.similarity)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("article", type=Path, help="the article as plain text")
    parser.add_argument("--source", type=Path, default=PROJECT_ROOT / "data" / "knowledge")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a piece is not covered")
    args = parser.parse_args(argv)
    missing = uncovered(args.article.read_text(encoding="utf-8"), args.source)
    for p in missing:
        print(f"{p.similarity:.2f}  {p.text}\n      closest fact: {p.fact}")
    print(f"{len(missing)} piece(s) of the article without a close fact")
    return 1 if missing and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
