"""The machinery that changes Rasa: version check, target checks, all-or-nothing apply.

A `Patch` names the Rasa attributes it replaces (`replaces`) and the ones its
replacement depends on without replacing them (`relies_on`), each a `Target` with the
fingerprint its original must have: the qualified name plus a hash of its source code,
written down for Rasa 3.6.21. `apply_patches` resolves and checks every target of every
patch before it changes anything, builds all replacements (from the originals it was
given, so a replacement that wraps an original always has one), and only then assigns
them; if an assignment fails, every attribute changed so far is put back.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect
from dataclasses import dataclass
from importlib import metadata
from types import ModuleType
from typing import Any, Callable, Dict, List, Sequence, Tuple

RASA_VERSION = "3.6.21"

_MISSING = object()


class RasaVersionError(RuntimeError):
    """The installed Rasa is not the version these patches were written for."""


class PatchTargetError(RuntimeError):
    """A Rasa attribute a patch replaces or relies on is missing or not the expected one."""


def installed_rasa_version() -> str:
    """The version of the installed `rasa` distribution (without importing Rasa)."""
    try:
        return metadata.version("rasa")
    except metadata.PackageNotFoundError:
        return "not installed"


def check_rasa_version(found: str | None = None) -> None:
    """Raise `RasaVersionError` unless `found` (default: the installed one) is RASA_VERSION."""
    found = installed_rasa_version() if found is None else found
    if found != RASA_VERSION:
        raise RasaVersionError(
            f"Revierlotse's Rasa patches (revierlotse.rasa36) are written for Rasa {RASA_VERSION}, "
            f"but Rasa {found} is installed. Install rasa=={RASA_VERSION} (pyproject.toml pins it), "
            f"or port revierlotse/rasa36 to the new version and update its fingerprints "
            f"(see docs/rasa-3.6-notes.md).")


def fingerprint(value: Any) -> str:
    """What a target is: `module NAME`, or `QUALNAME sha256:HASH` of its source code
    (`QUALNAME <TYPE>` for objects without Python source)."""
    if isinstance(value, ModuleType):
        return f"module {value.__name__}"
    value = value.__func__ if isinstance(value, (staticmethod, classmethod)) else value
    name = getattr(value, "__qualname__", type(value).__qualname__)
    try:
        source = inspect.getsource(value)
    except (TypeError, OSError):
        return f"{name} <{type(value).__name__}>"
    return f"{name} sha256:{hashlib.sha256(source.encode('utf-8')).hexdigest()[:16]}"


@dataclass(frozen=True)
class Target:
    """`module` + dotted `path` inside it (e.g. `rasa.core.agent`, `Agent.handle_message`)."""

    module: str
    path: str
    expected: str  # its fingerprint in Rasa 3.6.21

    @property
    def key(self) -> str:
        return f"{self.module}:{self.path}"

    def owner_and_name(self) -> Tuple[Any, str]:
        owner: Any = importlib.import_module(self.module)
        *parents, name = self.path.split(".")
        for parent in parents:
            owner = getattr(owner, parent)
        return owner, name

    def current(self) -> Any:
        """The attribute's value now (`_MISSING` if there is none)."""
        try:
            owner, name = self.owner_and_name()
        except (ImportError, AttributeError):
            return _MISSING
        return getattr(owner, name, _MISSING)

    def problem(self) -> str:
        """Why this target is not the expected one (empty if it is)."""
        value = self.current()
        if value is _MISSING:
            return f"{self.key}: not found (expected {self.expected})"
        found = fingerprint(value)
        if found != self.expected:
            return f"{self.key}: expected {self.expected}, found {found}"
        return ""


# build(originals) -> replacements; both keyed by Target.key of the `replaces` targets.
Builder = Callable[[Dict[str, Any]], Dict[str, Any]]


@dataclass(frozen=True)
class Patch:
    """One change to Rasa, named for what it does."""

    name: str
    speedup: bool  # True: only makes Rasa faster (off with RASA_SPEEDUPS=false)
    replaces: Tuple[Target, ...]
    build: Builder
    relies_on: Tuple[Target, ...] = ()
    doc: str = ""


def check_targets(patches: Sequence[Patch]) -> List[str]:
    """Every problem with the targets of `patches` (empty: all are as expected)."""
    problems = []
    for patch in patches:
        for target in (*patch.replaces, *patch.relies_on):
            problem = target.problem()
            if problem:
                problems.append(f"{patch.name}: {problem}")
    return problems


@dataclass
class Applied:
    """What `apply_patches` changed: originals (for tests and undo) and replacements."""

    originals: Dict[str, Any]
    replacements: Dict[str, Any]
    raw: List[Tuple[Any, str, Any]]  # (owner, name, what owner.__dict__ held) in order

    def undo(self) -> None:
        """Put every changed attribute back, last change first."""
        for owner, name, before in reversed(self.raw):
            if before is _MISSING:
                delattr(owner, name)
            else:
                setattr(owner, name, before)
        self.raw.clear()


def _raw_attribute(owner: Any, name: str) -> Any:
    """What `owner` itself holds under `name` (a staticmethod object, not its function)."""
    namespace = owner.__dict__ if isinstance(owner, (type, ModuleType)) else vars(owner)
    return namespace.get(name, _MISSING)


def apply_patches(patches: Sequence[Patch]) -> Applied:
    """Check all targets, build all replacements, then assign them all (or none)."""
    problems = check_targets(patches)
    if problems:
        raise PatchTargetError(
            f"Not patching Rasa: {len(problems)} target(s) differ from Rasa {RASA_VERSION}:\n  "
            + "\n  ".join(problems))
    originals: Dict[str, Any] = {}
    planned: List[Tuple[Target, Any]] = []
    for patch in patches:
        given = {target.key: target.current() for target in patch.replaces}
        made = patch.build(dict(given))
        if set(made) != set(given):
            raise PatchTargetError(f"{patch.name}: built {sorted(made)}, but replaces {sorted(given)}")
        originals.update(given)
        planned += [(target, made[target.key]) for target in patch.replaces]
    applied = Applied(originals, {target.key: value for target, value in planned}, [])
    try:
        for target, value in planned:
            owner, name = target.owner_and_name()
            before = _raw_attribute(owner, name)
            setattr(owner, name, value)
            applied.raw.append((owner, name, before))
    except BaseException:
        applied.undo()
        raise
    return applied
