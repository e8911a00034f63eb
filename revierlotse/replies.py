"""The apology: what every channel says when a turn fails.

It is knowledge text like every other reply, so it is read from the knowledge source
files themselves (the `replies: apology:` entry under data/knowledge/), not from the
database: it must still be there when the database is down. If even the files cannot
be read (a broken deployment), a fixed sentence is said instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, List

import yaml

# Said when even the knowledge source cannot be read (a broken deployment).
LAST_RESORT_APOLOGY = "Entschuldige, da ist etwas schiefgelaufen. Bitte versuch es später noch einmal."

_apology_cache: Dict[tuple, str] = {}


def source_files(path: Path) -> List[Path]:
    """The YAML files of the knowledge source at `path` (a file or a folder of them)."""
    if path.is_dir():
        files = sorted([*path.glob("*.yml"), *path.glob("*.yaml")])
        if not files:
            raise FileNotFoundError(f"{path}: no .yml files found")
        return files
    if not path.exists():
        raise FileNotFoundError(f"{path}: file not found")
    return [path]


def apology_text(path: Path | str) -> str:
    """The apology from the knowledge source at `path` (file or folder).

    Cached per file modification time; falls back to `LAST_RESORT_APOLOGY` if the
    source cannot be read at all.
    """
    try:
        files = source_files(Path(path))
        key = tuple((str(f), f.stat().st_mtime_ns) for f in files)
        if key not in _apology_cache:
            replies: Dict[str, Any] = {}
            for file in files:
                replies.update((yaml.safe_load(file.read_text(encoding="utf-8")) or {}).get("replies") or {})
            _apology_cache.clear()
            _apology_cache[key] = str(replies["apology"]).strip()
        return _apology_cache[key]
    except Exception:  # noqa: BLE001 - this is the last line of defence
        return LAST_RESORT_APOLOGY
