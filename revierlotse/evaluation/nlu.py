"""`make eval-nlu`: intent accuracy of the trained model on the held-out set.

Prints accuracy, macro F1 and the top confusions for our pipeline and, in the same
run, for a TF-IDF character n-gram + linear classifier baseline trained on the same
training data. `--json PATH` also writes the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import List, Optional, Sequence, Tuple

from revierlotse.settings import PROJECT_ROOT

# Held-out sets, each written independently of the training data (and of each other).
HELDOUT_SETS = (
    PROJECT_ROOT / "tests" / "nlu" / "heldout.yml",
    PROJECT_ROOT / "tests" / "nlu" / "heldout_fresh.yml",
)
HELDOUT = HELDOUT_SETS[0]
TRAINING = PROJECT_ROOT / "data" / "nlu"


@dataclass
class Scores:
    name: str
    accuracy: float
    macro_f1: float
    n: int
    confusions: List[Tuple[str, str, int]]
    errors: List[Tuple[str, str, str]]  # text, expected, predicted


def load_examples(path: Path) -> List[Tuple[str, str]]:
    from rasa.shared.nlu.training_data.loading import load_data

    data = load_data(str(path))
    return [(e.get("text"), e.get("intent")) for e in data.intent_examples]


def score(name: str, texts: Sequence[str], expected: Sequence[str], predicted: Sequence[str]) -> Scores:
    from sklearn.metrics import accuracy_score, f1_score

    pairs = Counter((e, p) for e, p in zip(expected, predicted) if e != p)
    return Scores(
        name=name,
        accuracy=float(accuracy_score(expected, predicted)),
        # Macro F1 over the true intents only (nlu_fallback is never a true label).
        macro_f1=float(f1_score(expected, predicted, labels=sorted(set(expected)), average="macro", zero_division=0)),
        n=len(expected),
        confusions=[(e, p, c) for (e, p), c in pairs.most_common(8)],
        errors=[(t, e, p) for t, e, p in zip(texts, expected, predicted) if e != p],
    )


def baseline_predictions(train: List[Tuple[str, str]], texts: Sequence[str]) -> List[str]:
    """TF-IDF over character n-grams (2-5, word-bounded) with a linear SVM."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import LinearSVC

    clf = make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), lowercase=True, sublinear_tf=True),
        LinearSVC(C=1.0),
    )
    clf.fit([t for t, _ in train], [i for _, i in train])
    return list(clf.predict(list(texts)))


def model_predictions(model: Path, texts: Sequence[str]) -> List[str]:
    """Intents the trained Rasa model predicts (FallbackClassifier's nlu_fallback included)."""
    from rasa.core.agent import Agent

    agent = Agent.load(str(model))

    async def parse_all() -> List[str]:
        return [(await agent.parse_message(t))["intent"]["name"] for t in texts]

    return asyncio.run(parse_all())


def evaluate(model: Path, heldout: Path = HELDOUT, training: Path = TRAINING) -> Tuple[Scores, Scores]:
    """Our model and the baseline on one held-out set (fallback predictions count as wrong)."""
    test = load_examples(heldout)
    texts, expected = [t for t, _ in test], [i for _, i in test]
    ours = score(f"revierlotse/{heldout.stem}", texts, expected, model_predictions(model, texts))
    base = score(f"baseline/{heldout.stem}", texts, expected, baseline_predictions(load_examples(training), texts))
    return ours, base


def report(results: Sequence[Scores]) -> str:
    lines = [f"{'pipeline/held-out set':<32} {'accuracy':>9} {'macro F1':>9} {'n':>5}"]
    lines += [f"{r.name:<32} {r.accuracy:>9.3f} {r.macro_f1:>9.3f} {r.n:>5}" for r in results]
    for r in results:
        lines.append(f"\ntop confusions, {r.name} (expected -> predicted: count):")
        lines += [f"  {e} -> {p}: {c}" for e, p, c in r.confusions] or ["  none"]
    return "\n".join(lines)


def main(argv: Optional[List[str]] = None) -> None:
    from revierlotse.model import ensure_model

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model", type=Path, default=None)
    parser.add_argument("--heldout", type=Path, action="append", help="held-out set(s); default: all")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--errors", action="store_true", help="list every misclassified utterance")
    args = parser.parse_args(argv)
    os.environ.setdefault("RASA_TELEMETRY_ENABLED", "false")
    logging.disable(logging.WARNING)
    model = args.model or ensure_model()
    results: List[Scores] = []
    for heldout in args.heldout or [p for p in HELDOUT_SETS if p.exists()]:
        results += evaluate(model, heldout)
    print(report(results))
    if args.errors:
        for r in results[::2]:
            print(f"\nmisclassified by {r.name}:")
            for text, expected, predicted in r.errors:
                print(f"  [{expected} -> {predicted}] {text}")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
