"""Patches that only make Rasa 3.6.21 faster: same results, less CPU per message.

Each is off with RASA_SPEEDUPS=false (the behaviour patches stay). The figures are from
profiling the Rasa server under load (docs/performance.md, docs/rasa-3.6-notes.md).
"""

from __future__ import annotations

from typing import Any, Dict

from revierlotse.rasa36.core import Patch, Target

# --- validate action server responses with validators built once -----------------------

VALIDATE_RESULT = Target("rasa.core.actions.action", "RemoteAction._validate_action_result",
                         "RemoteAction._validate_action_result sha256:f8cdb4be68123961")
RESPONSE_SPEC = Target("rasa.core.actions.action", "RemoteAction.action_response_format_spec",
                       "RemoteAction.action_response_format_spec sha256:091b74aa3738d126")


def _validate_with_prebuilt_validator(_originals: Dict[str, Any]) -> Dict[str, Any]:
    """`RemoteAction._validate_action_result` calls `jsonschema.validate`, which checks the
    large response schema against its meta-schema and builds a new validator on every
    custom action call (~80 % of the server's CPU with a light pipeline). And each event
    is checked against all 23 `oneOf` alternatives of Rasa's event schema, although its
    "event" name (required, one `const` per alternative) admits only one. A response
    passes at once when every event matches the alternative its name selects (then
    exactly that one matches, so `oneOf` holds); anything else goes through the full
    schema, which decides and reports as before: same schema, same error (best match),
    same message suffix."""
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import DOCS_BASE_URL, RemoteAction

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    surely_valid = events_checked_by_name(schema, validator_class)

    def _validate_action_result(self, result) -> bool:
        if surely_valid is not None and surely_valid(result):
            return True
        error = best_match(validator.iter_errors(result))
        if error is None:
            return True
        error.message += (
            f". Failed to validate Action server response from API, "
            f"make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit "
            f"{DOCS_BASE_URL}/custom-actions"
        )
        raise error

    return {VALIDATE_RESULT.key: _validate_action_result}


def events_checked_by_name(schema: dict, validator_class):
    """A check that is True only for responses `schema` accepts, taking each event's
    `oneOf` alternative by its "event" name; None if the schema is not shaped for that
    (an alternative without a distinct `const` event name)."""
    events_schema = schema["properties"]["events"]
    event_schema = events_schema["items"]
    if "event" not in event_schema.get("required", ()):
        return None
    common = {key: value for key, value in event_schema.items() if key != "oneOf"}
    by_name = {}
    for alternative in event_schema["oneOf"]:
        name = alternative.get("properties", {}).get("event", {}).get("const")
        if not isinstance(name, str) or name in by_name:
            return None
        by_name[name] = validator_class({**common, "allOf": [alternative]})
    without_items = {key: value for key, value in events_schema.items() if key != "items"}
    envelope = validator_class({**schema, "properties": {**schema["properties"], "events": without_items}})

    def surely_valid(result) -> bool:
        if not envelope.is_valid(result):
            return False
        for event in result.get("events") or ():
            name = event.get("event") if isinstance(event, dict) else None
            check = by_name.get(name) if isinstance(name, str) else None
            if check is None or not check.is_valid(event):
                return False
        return True

    return surely_valid


# --- event classes by type name from a dict ----------------------------------------------

RESOLVE_BY_TYPE = Target("rasa.shared.core.events", "Event.resolve_by_type",
                         "Event.resolve_by_type sha256:b5cf570fa7f286c7")

# type name -> Event subclass, filled by the patch (tests look at it).
EVENT_TYPES: Dict[str, Any] = {}


def _resolve_event_types_from_a_cache(originals: Dict[str, Any]) -> Dict[str, Any]:
    """Rasa's `Event.resolve_by_type` walks all Event subclasses for every event it
    deserialises, i.e. for each event of every tracker load (~6 % of the server's CPU
    under 10 users). The dict keeps Rasa's first-match order, is rebuilt when a name is
    missing (a subclass imported later), and names it still does not know go to Rasa's
    own method (legacy "topic", default, error)."""
    from rasa.shared.core import events
    from rasa.shared.utils.common import all_subclasses

    original = originals[RESOLVE_BY_TYPE.key]

    def refresh() -> None:
        fresh: dict = {}
        for cls in all_subclasses(events.Event):
            fresh.setdefault(cls.type_name, cls)
        EVENT_TYPES.clear()
        EVENT_TYPES.update(fresh)

    def resolve_by_type(type_name, default=None):
        cls = EVENT_TYPES.get(type_name)
        if cls is None:
            refresh()
            cls = EVENT_TYPES.get(type_name)
        return cls if cls is not None else original(type_name, default)

    return {RESOLVE_BY_TYPE.key: staticmethod(resolve_by_type)}


# --- prediction graphs without dask -----------------------------------------------------

PROCESSOR_GRAPH_RUNNER = Target("rasa.core.processor", "DaskGraphRunner",
                                "DaskGraphRunner sha256:78a7d146c5c06d4c")


def _run_prediction_graphs_without_dask(_originals: Dict[str, Any]) -> Dict[str, Any]:
    """Serve with `SequentialGraphRunner` (same results, no dask scheduler per graph run).
    `MessageProcessor` looks the runner class up in its module when it loads the model;
    training keeps Rasa's dask runner. The target's fingerprint is the source of the
    whole `DaskGraphRunner` class, whose behaviour the sequential runner reproduces."""
    from revierlotse.rasa36.graph_runner import SequentialGraphRunner

    return {PROCESSOR_GRAPH_RUNNER.key: SequentialGraphRunner}


# --- dialogue states built incrementally ------------------------------------------------

STATES_FOR_HISTORY = Target("rasa.shared.core.domain", "Domain.states_for_tracker_history",
                            "Domain.states_for_tracker_history sha256:035111ce73ac90ba")
# What `dialogue_states._Walk.visit` calls (Rasa's loop body uses them).
STATE_HELPERS = tuple(
    Target("rasa.shared.core.domain", f"Domain.{name}", f"Domain.{name} sha256:{fingerprint}")
    for name, fingerprint in (
        ("_get_prev_action_sub_state", "ded6728b5c4b6902"),
        ("get_active_state", "5a4a505743120441"),
        ("_remove_rule_only_features", "3e4a2ba4c866fe25"),
        ("_substitute_rule_only_user_input", "22bb906662cf575d"),
        ("_clean_state", "8923165d0e7231ab"),
    )
)

# The one `IncrementalStates` the patch serves from (tests look at it).
INCREMENTAL_STATES: Dict[str, Any] = {}


def _build_dialogue_states_incrementally(_originals: Dict[str, Any]) -> Dict[str, Any]:
    """RulePolicy rebuilt the dialogue states from the first event three times per
    message (replaying the whole conversation each time); now once per message, the
    later predictions on the same tracker replaying only the events added since. Same
    states, tested against Rasa's method."""
    from revierlotse.erasure import on_erasure
    from revierlotse.rasa36.dialogue_states import IncrementalStates

    incremental = INCREMENTAL_STATES.setdefault("served", IncrementalStates())
    on_erasure(incremental.forget)  # an erased conversation leaves no replay behind

    def states_for_tracker_history(self, tracker, omit_unset_slots=False, ignore_rule_only_turns=False,
                                   rule_only_data=None):
        return incremental.states(self, tracker, omit_unset_slots=omit_unset_slots,
                                  ignore_rule_only_turns=ignore_rule_only_turns, rule_only_data=rule_only_data)

    return {STATES_FOR_HISTORY.key: states_for_tracker_history}


# --- one HTTP session per endpoint --------------------------------------------------------

ENDPOINT_SESSION = Target("rasa.utils.endpoints", "EndpointConfig.session",
                          "EndpointConfig.session sha256:e55aa13d9d4fb4bc")
ENDPOINT_REQUEST = Target("rasa.utils.endpoints", "EndpointConfig.request",
                          "EndpointConfig.request sha256:ccdb778aed8208e2")
CLOSE_RESOURCES = Target("rasa.core.run", "close_resources", "close_resources sha256:bc3d36e8149e84cd")

# Idle connections to an endpoint (the action server) are closed after this many seconds:
# before Sanic's keep-alive timeout (5 s) can close one under a request being sent.
ENDPOINT_KEEPALIVE_S = 2.0


class _SharedSession:
    """`async with` over a session that outlives the block (EndpointConfig.session)."""

    def __init__(self, session) -> None:
        self.session = session

    async def __aenter__(self):
        return self.session

    async def __aexit__(self, *exc) -> None:
        return None


def _keep_endpoint_connections_open(originals: Dict[str, Any]) -> Dict[str, Any]:
    """Rasa's `EndpointConfig.request` opens a new aiohttp session (connector, DNS lookup
    in a thread, TCP connect) for every custom action call and closes it afterwards:
    0.5-1 ms of CPU and ~1 ms of latency per call. One session per endpoint and event
    loop keeps connections alive for ENDPOINT_KEEPALIVE_S; same headers, auth and timeout
    as Rasa's; the sessions are closed when the server stops (Rasa's `close_resources`)."""
    import asyncio

    import aiohttp
    from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT

    sessions: dict = {}

    def session(self) -> _SharedSession:
        loop = asyncio.get_running_loop()
        auth = (self.basic_auth["username"], self.basic_auth["password"]) if self.basic_auth else None
        key = (self.url, tuple(sorted(self.headers.items())), auth)
        owner, shared = sessions.get(key, (None, None))
        if owner is not loop or shared.closed:  # first call, or a session of another (ended) loop
            shared = aiohttp.ClientSession(
                headers=self.headers,
                auth=aiohttp.BasicAuth(*auth) if auth else None,
                timeout=aiohttp.ClientTimeout(total=DEFAULT_REQUEST_TIMEOUT),
                connector=aiohttp.TCPConnector(keepalive_timeout=ENDPOINT_KEEPALIVE_S),
            )
            sessions[key] = (loop, shared)
        return _SharedSession(shared)

    close_resources = originals[CLOSE_RESOURCES.key]

    async def close_resources_and_sessions(app, loop) -> None:
        await close_resources(app, loop)
        for key, (owner, shared) in list(sessions.items()):
            if owner is loop:
                del sessions[key]
                await shared.close()

    return {ENDPOINT_SESSION.key: session, CLOSE_RESOURCES.key: close_resources_and_sessions}


# --- debug-log arguments copied only when debug events are logged ------------------------

# Rasa modules whose every `copy.` use is a debug-log argument (checked by a test).
DEBUG_LOG_COPY_MODULES = ("rasa.core.processor", "rasa.core.policies.rule_policy")
COPY_MODULES = tuple(Target(name, "copy", "module copy") for name in DEBUG_LOG_COPY_MODULES)


def debug_logged() -> bool:
    """True when structlog passes debug events on (LOG_LEVEL=DEBUG)."""
    import structlog

    wrapper = structlog.get_config().get("wrapper_class")
    debug = getattr(wrapper, "debug", None)
    return debug is None or getattr(debug, "__name__", "") != "_nop"


class CopyForDebugLogs:
    """Stands in for the `copy` module inside Rasa modules that use it only to copy
    the arguments of `structlogger.debug(...)` calls."""

    def __init__(self, real) -> None:
        self._copy = real

    def deepcopy(self, value, memo=None):
        if debug_logged():
            return self._copy.deepcopy(value, memo)
        return value  # the debug call that receives it is a no-op

    def __getattr__(self, name):
        return getattr(self._copy, name)


def _copy_for_debug_logs_only_when_logged(originals: Dict[str, Any]) -> Dict[str, Any]:
    """`MessageProcessor` and `RulePolicy` deep-copy events, slots and the whole dialogue
    state history as arguments of `structlogger.debug(...)` (so the log's anonymiser
    cannot change live objects), and Python evaluates those copies even when the debug
    call does nothing: ~38,000 `deepcopy` calls per 400 messages. At LOG_LEVEL=DEBUG the
    copies are made exactly as before."""
    return {target.key: CopyForDebugLogs(originals[target.key]) for target in COPY_MODULES}


# --- Domain.is_empty against one empty domain ---------------------------------------------

IS_EMPTY = Target("rasa.shared.core.domain", "Domain.is_empty", "Domain.is_empty sha256:884be90ef485f1d2")


def _compare_domains_with_one_empty_domain(_originals: Dict[str, Any]) -> Dict[str, Any]:
    """`MessageProcessor` asks `domain.is_empty()` for every message, and Rasa answers by
    building a new empty `Domain` from a dict each time: ~0.1 ms per message. The
    comparison itself is unchanged (the domain's dict against the empty domain's dict)."""
    from rasa.shared.core.domain import Domain

    empty = Domain.empty().as_dict()  # held here only, so nothing can change it

    def is_empty(self) -> bool:
        return self.as_dict() == empty

    return {IS_EMPTY.key: is_empty}


PATCHES = (
    Patch("validate_action_responses_with_prebuilt_validator", True, (VALIDATE_RESULT,),
          _validate_with_prebuilt_validator, relies_on=(RESPONSE_SPEC,), doc=_validate_with_prebuilt_validator.__doc__),
    Patch("resolve_event_types_from_a_cache", True, (RESOLVE_BY_TYPE,), _resolve_event_types_from_a_cache,
          doc=_resolve_event_types_from_a_cache.__doc__),
    Patch("run_prediction_graphs_without_dask", True, (PROCESSOR_GRAPH_RUNNER,),
          _run_prediction_graphs_without_dask, doc=_run_prediction_graphs_without_dask.__doc__),
    Patch("build_dialogue_states_incrementally", True, (STATES_FOR_HISTORY,),
          _build_dialogue_states_incrementally, relies_on=STATE_HELPERS,
          doc=_build_dialogue_states_incrementally.__doc__),
    Patch("keep_endpoint_connections_open", True, (ENDPOINT_SESSION, CLOSE_RESOURCES),
          _keep_endpoint_connections_open, relies_on=(ENDPOINT_REQUEST,),
          doc=_keep_endpoint_connections_open.__doc__),
    Patch("copy_for_debug_logs_only_when_logged", True, COPY_MODULES, _copy_for_debug_logs_only_when_logged,
          doc=_copy_for_debug_logs_only_when_logged.__doc__),
    Patch("compare_domains_with_one_empty_domain", True, (IS_EMPTY,), _compare_domains_with_one_empty_domain,
          doc=_compare_domains_with_one_empty_domain.__doc__),
)
