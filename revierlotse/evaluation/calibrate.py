"""Calibrating the answer selection's weights and thresholds on the development set.

    python -m revierlotse.evaluation.calibrate            # dev set, prints the best settings

Only the development set (tests/eval/dev.yml) is used: the held-out set stays unseen.
Each first turn of a conversation is parsed once by the trained NLU model (in process),
then answered by the knowledge layer under every setting of a small grid, and judged
as `make eval` judges replies. Follow-up turns need the dialogue and are left to
`make eval`. The result goes into `Weights` / `Thresholds` by hand, with the figures in
docs/answer-quality.md.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

from revierlotse.evaluation.answers import SETS, Judge, judge_for, load_set
from revierlotse.kb.models import QUALIFIER_NAMES
from revierlotse.settings import PROJECT_ROOT

TOPIC_PREFIX = "ask_"
# Each name is a field of `Weights` or `Thresholds`; every combination is tried.
GRID = {
    "lexical": (1.5,),
    "topic": (0.45,),
    "answer_min": (1.0,),
    "unfamiliar_semantic_min": (0.5,),
    "uncovered_example_min": (0.6, 0.65, 0.7, 0.75, 0.8, 9.0),
    "uncovered_margin": (-0.05, 0.0, 0.05),
}


def parse_all(texts: Sequence[str]) -> List[dict]:
    """NLU results (intent ranking, entities, clause topics) of `texts` from the trained model."""
    from rasa.core.agent import Agent

    from revierlotse.model import ensure_model

    agent = Agent.load(str(ensure_model()))

    async def run() -> List[dict]:
        return [await agent.parse_message(t) for t in texts]

    return asyncio.run(run())


def prior_of(parse: dict) -> Dict[str, float]:
    prior: Dict[str, float] = {}
    for r in parse.get("intent_ranking") or []:
        name = r.get("name") or ""
        if name.startswith(TOPIC_PREFIX):
            prior[name[len(TOPIC_PREFIX):]] = max(prior.get(name[len(TOPIC_PREFIX):], 0.0), r["confidence"])
    return prior


def entity(parse: dict, name: str) -> Optional[str]:
    values = [e["value"] for e in parse.get("entities") or [] if e.get("entity") == name]
    return str(values[-1]) if values else None


def score(kb, cases, judge: Judge) -> Tuple[float, float, float]:
    """(accuracy, covered accuracy, misleading share) of the first turns under kb's settings."""
    judged = []
    for turn, parse in cases:
        topics = [t[len(TOPIC_PREFIX):] for t in parse.get("topics") or [] if t.startswith(TOPIC_PREFIX)]
        qualifiers = {name: entity(parse, name) for name in QUALIFIER_NAMES}  # slots fill from entities
        answers = kb.answer_question(turn.text, prior_of(parse), qualifiers, place=entity(parse, "place"),
                                     topics=topics, mentioned=[n for n, v in qualifiers.items() if v])
        judged.append(judge.judge(turn, "\n\n".join(a.text for a in answers)))
    covered = [j for j in judged if not j.turn.not_covered]
    uncovered = [j for j in judged if j.turn.not_covered]
    return (sum(j.correct for j in judged) / len(judged), sum(j.correct for j in covered) / len(covered),
            sum(j.misleading for j in uncovered) / max(len(uncovered), 1))


def main(argv: Optional[Sequence[str]] = None) -> int:
    from revierlotse.db import make_engine
    from revierlotse.kb import KnowledgeBase
    from revierlotse.kb.loader import load_knowledge

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--set", default="dev", help="set name or path (never the held-out set)")
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args(argv)
    if args.set == "heldout":
        parser.error("calibrating on the held-out set would make it seen")

    cases = [conv[0] for conv in load_set(SETS.get(args.set, Path(args.set)))]
    parses = parse_all([t.text for t in cases])
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/kb.db"
        engine = make_engine(url)
        load_knowledge(engine, PROJECT_ROOT / "data" / "knowledge")
        kb = KnowledgeBase.from_url(url).pinned()
        kb._current().index()._encode = _encode_one  # each question is encoded once for the whole grid
        judge = judge_for(kb)
        pairs = list(zip(cases, parses))
        base_w, base_t = kb.weights, kb.thresholds
        results = []
        for setting in itertools.product(*GRID.values()):
            values = dict(zip(GRID, setting))
            kb.weights = replace(base_w, **{k: v for k, v in values.items() if hasattr(base_w, k)})
            kb.thresholds = replace(base_t, **{k: v for k, v in values.items() if hasattr(base_t, k)})
            results.append((score(kb, pairs, judge), setting))
        results.sort(reverse=True)
        print("accuracy covered misleading | " + " ".join(GRID))
        for (acc, cov, mis), setting in results[: args.top]:
            print(f"{acc:.3f}    {cov:.3f}   {mis:.3f}      | {setting}")
        engine.dispose()
    return 0


@lru_cache(maxsize=None)
def _encode_cached(text: str):
    from revierlotse.nlu.encoder import encode

    return encode([text])[0]


def _encode_one(texts):
    import numpy as np

    return np.stack([_encode_cached(t) for t in texts])


if __name__ == "__main__":
    raise SystemExit(main())
