"""The questions the benchmark tools send: the texts of a Rasa NLU examples file.

The tools take the file as an argument (`--questions FILE`); `make bench` passes the
held-out NLU set, so the questions are ones the model was not trained on.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import List

import yaml

_ANNOTATION = re.compile(r"\[([^\]]+)\](\{[^}]*\}|\([^)]*\))")


def read_questions(path: Path | str) -> List[str]:
    """Plain texts of the NLU examples in `path` (entity annotations removed)."""
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    texts = []
    for block in data.get("nlu", []):
        for line in str(block.get("examples", "")).splitlines():
            line = line.strip()
            if line.startswith("- "):
                texts.append(_ANNOTATION.sub(r"\1", line[2:]).strip())
    texts = [t for t in texts if t]
    if not texts:
        raise ValueError(f"{path}: no NLU examples found")
    return texts


def add_questions_argument(parser) -> None:
    """`--questions FILE` (required) for a tool's argument parser."""
    parser.add_argument("--questions", type=Path, required=True, metavar="FILE",
                        help="Rasa NLU YAML whose examples are sent as questions (make bench: tests/nlu/heldout.yml)")
