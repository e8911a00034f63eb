"""Fixes to Rasa 3.6.21 behaviour, applied by the launcher before Rasa starts.

Each patch is small, named for what it fixes, and covered by a test.
"""

from __future__ import annotations

import sys

_applied = False


def apply() -> None:
    """Apply every patch once (idempotent)."""
    global _applied
    if _applied:
        return
    _applied = True
    keep_tensorflow_from_importing_jax()  # these two first: before anything imports Rasa
    import_skops_before_tensorflow()
    keep_log_level_after_model_load()
    guard_every_turn()
    apologise_when_actions_fail()
    validate_action_responses_with_prebuilt_validator()
    resolve_event_types_from_a_cache()
    run_prediction_graphs_without_dask()
    build_dialogue_states_incrementally()
    keep_endpoint_connections_open()
    copy_for_debug_logs_only_when_logged()
    compare_domains_with_one_empty_domain()
    hide_version_on_root_route()


class _RefuseJax:
    """Import hook: `jax` is not there for this process."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname.split(".")[0] in {"jax", "jaxlib"}:
            raise ImportError(f"{fullname} is not used by Revierlotse (not imported, to start faster)")
        return None


def keep_tensorflow_from_importing_jax() -> None:
    """Start without importing JAX, which nothing here uses.

    TensorFlow 2.12 (imported by Rasa even for a pipeline without TensorFlow parts)
    tries `from jax import xla_computation` for a TF-Lite conversion helper and carries
    on without it on ImportError. JAX is installed (a TensorFlow dependency), so that
    import alone cost 2.5-4 s of every server start and training on this machine.
    """
    if not any(isinstance(finder, _RefuseJax) for finder in sys.meta_path):
        sys.meta_path.insert(0, _RefuseJax())


def import_skops_before_tensorflow() -> None:
    """Import skops (the classifier's safe model format) while few modules are loaded.

    On import, skops finds the module of each NumPy/SciPy ufunc by scanning every module
    in `sys.modules` (pickle's `whichmodule`). After Rasa has imported TensorFlow, that is
    ~1.2 million attribute lookups: 7-15 s of the server's start-up and of each training
    on this 2-core machine, against ~3 s (mostly importing scikit-learn, which Rasa does
    anyway) before it. Same trusted-type lists either way.
    """
    import skops.io  # noqa: F401


def hide_version_on_root_route() -> None:
    """`GET /` says the server is up without telling a scanner which Rasa version runs.

    Stock Rasa answers "Hello from Rasa: 3.6.21". `rasa.server.add_root_route` is looked
    up at call time by both app factories (with and without the HTTP API).
    """
    import rasa.server
    from sanic import response

    def add_root_route(app) -> None:
        @app.get("/")
        async def hello(request):
            return response.text("Revierlotse is running.")

    rasa.server.add_root_route = add_root_route


def run_prediction_graphs_without_dask() -> None:
    """Serve with `revierlotse.graph_runner.SequentialGraphRunner` (same results, no dask
    scheduler per graph run). `MessageProcessor` looks the runner class up when it loads
    the model; training keeps Rasa's dask runner."""
    import rasa.core.processor

    from revierlotse.graph_runner import SequentialGraphRunner

    rasa.core.processor.DaskGraphRunner = SequentialGraphRunner


class _CopyForDebugLogs:
    """Stands in for the `copy` module inside Rasa modules that use it only to copy
    the arguments of `structlogger.debug(...)` calls."""

    def __init__(self) -> None:
        import copy

        self._copy = copy

    def deepcopy(self, value, memo=None):
        if debug_logged():
            return self._copy.deepcopy(value, memo)
        return value  # the debug call that receives it is a no-op

    def __getattr__(self, name):
        return getattr(self._copy, name)


def debug_logged() -> bool:
    """True when structlog passes debug events on (LOG_LEVEL=DEBUG)."""
    import structlog

    wrapper = structlog.get_config().get("wrapper_class")
    debug = getattr(wrapper, "debug", None)
    return debug is None or getattr(debug, "__name__", "") != "_nop"


# Rasa modules whose every `copy.` use is a debug-log argument (checked by a test).
DEBUG_LOG_COPY_MODULES = ("rasa.core.processor", "rasa.core.policies.rule_policy")


def copy_for_debug_logs_only_when_logged() -> None:
    """Copy debug-log arguments only when debug events are logged.

    `MessageProcessor` and `RulePolicy` deep-copy events, slots and the whole dialogue
    state history as arguments of `structlogger.debug(...)` (so the log's anonymiser
    cannot change live objects), and Python evaluates those copies even when the
    debug call does nothing: ~38,000 `deepcopy` calls per 400 messages. At
    LOG_LEVEL=DEBUG the copies are made exactly as before.
    """
    import importlib

    stand_in = _CopyForDebugLogs()
    for name in DEBUG_LOG_COPY_MODULES:
        importlib.import_module(name).copy = stand_in


def compare_domains_with_one_empty_domain() -> None:
    """`Domain.is_empty` compares with an empty domain built once, not once per call.

    `MessageProcessor` asks `domain.is_empty()` for every message (before checking the
    parsed intent and entities against the domain), and Rasa answers by building a new
    empty `Domain` from a dict each time: ~0.1 ms per message. The comparison itself is
    unchanged (the domain's dict against the empty domain's dict).
    """
    from rasa.shared.core.domain import Domain

    empty = Domain.empty().as_dict()  # held here only, so nothing can change it

    def is_empty(self: Domain) -> bool:
        return self.as_dict() == empty

    Domain.is_empty = is_empty


_rasa_states_for_tracker_history = None  # Rasa's own Domain.states_for_tracker_history


def build_dialogue_states_incrementally() -> None:
    """Serve `Domain.states_for_tracker_history` from `revierlotse.dialogue_states`.

    RulePolicy rebuilt the dialogue states from the first event three times per message
    (replaying the whole conversation each time); now once per message, the later
    predictions on the same tracker replaying only the events added since (the tracker is
    loaded anew for the next message, so that one starts over). Same states, tested
    against Rasa's method.
    """
    global _rasa_states_for_tracker_history
    from rasa.shared.core.domain import Domain

    from revierlotse.dialogue_states import IncrementalStates

    if _rasa_states_for_tracker_history is not None:
        return
    _rasa_states_for_tracker_history = Domain.states_for_tracker_history
    incremental = IncrementalStates()

    def states_for_tracker_history(self, tracker, omit_unset_slots=False, ignore_rule_only_turns=False,
                                   rule_only_data=None):
        return incremental.states(self, tracker, omit_unset_slots=omit_unset_slots,
                                  ignore_rule_only_turns=ignore_rule_only_turns, rule_only_data=rule_only_data)

    Domain.states_for_tracker_history = states_for_tracker_history


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


def keep_endpoint_connections_open() -> None:
    """One aiohttp session per endpoint and event loop, instead of one per request.

    Rasa's `EndpointConfig.request` opens a new session (connector, DNS lookup in a
    thread, TCP connect) for every custom action call and closes it afterwards: 0.5-1 ms
    of CPU and ~1 ms of latency per call here. The shared session keeps connections
    alive for ENDPOINT_KEEPALIVE_S; same headers, auth and timeout as Rasa's; the
    sessions are closed when the server stops (Rasa's `close_resources`).
    """
    import asyncio

    import aiohttp
    import rasa.core.run
    from rasa.utils.endpoints import DEFAULT_REQUEST_TIMEOUT, EndpointConfig

    sessions: dict = {}

    def session(self: EndpointConfig) -> _SharedSession:
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

    close_resources = rasa.core.run.close_resources

    async def close_resources_and_sessions(app, loop) -> None:
        await close_resources(app, loop)
        for key, (owner, shared) in list(sessions.items()):
            if owner is loop:
                del sessions[key]
                await shared.close()

    EndpointConfig.session = session
    rasa.core.run.close_resources = close_resources_and_sessions


def resolve_event_types_from_a_cache() -> None:
    """Look event classes up by type name in a dict instead of walking every subclass.

    Rasa's `Event.resolve_by_type` walks all Event subclasses (an `inspect.isabstract`
    check on each) for every event it deserialises, i.e. for each event of every tracker
    load: ~6 % of the Rasa server's CPU under 10 users (py-spy). The dict keeps Rasa's
    first-match order, is rebuilt when a name is missing (a subclass imported later), and
    names it still does not know go to Rasa's own method (legacy "topic", default, error).
    """
    from rasa.shared.core import events
    from rasa.shared.utils.common import all_subclasses

    original = events.Event.resolve_by_type
    by_name: dict = {}

    def refresh() -> None:
        fresh: dict = {}
        for cls in all_subclasses(events.Event):
            fresh.setdefault(cls.type_name, cls)
        by_name.clear()
        by_name.update(fresh)

    def resolve_by_type(type_name, default=None):
        cls = by_name.get(type_name)
        if cls is None:
            refresh()
            cls = by_name.get(type_name)
        return cls if cls is not None else original(type_name, default)

    events.Event.resolve_by_type = staticmethod(resolve_by_type)


def validate_action_responses_with_prebuilt_validator() -> None:
    """Validate action server responses with validators built at start-up.

    `RemoteAction._validate_action_result` calls `jsonschema.validate`, which checks the
    large response schema against its meta-schema and builds a new validator on every
    custom action call (RASA-NOTES.md: ~80 % of the server's CPU with a light pipeline).
    And each event is checked against all 23 `oneOf` alternatives of Rasa's event schema,
    although its "event" name (required, one `const` per alternative) admits only one:
    1.3 ms per action call here. A response passes at once when every event matches the
    alternative its name selects (then exactly that one matches, so `oneOf` holds);
    anything else goes through the full schema, which decides and reports as before:
    same schema, same error (best match), same message suffix.
    """
    from jsonschema.exceptions import best_match
    from jsonschema.validators import validator_for
    from rasa.core.actions.action import DOCS_BASE_URL, RemoteAction

    schema = RemoteAction.action_response_format_spec()
    validator_class = validator_for(schema)
    validator_class.check_schema(schema)
    validator = validator_class(schema)
    surely_valid = events_checked_by_name(schema, validator_class)

    def _validate_action_result(self: RemoteAction, result) -> bool:
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

    RemoteAction._validate_action_result = _validate_action_result


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


def keep_log_level_after_model_load() -> None:
    """Restore the root log level after the model is loaded.

    Loading the model imports skops -> sklearn.utils.all_estimators -> numpy.distutils,
    whose import sets the root logger to WARNING: from then on the server dropped every
    INFO line (Rasa's "server is up" and our turn log included).
    """
    import logging

    import rasa.core.agent

    from revierlotse.settings import get_settings

    load_agent = rasa.core.agent.load_agent

    async def load_agent_keeping_log_level(*args, **kwargs):
        try:
            return await load_agent(*args, **kwargs)
        finally:
            logging.getLogger().setLevel(get_settings().log_level.upper())

    rasa.core.agent.load_agent = load_agent_keeping_log_level


def guard_every_turn() -> None:
    """Rate limit, empty/over-long text, failures and the INFO turn log, for all channels.

    Wraps `Agent.handle_message` (every channel hands its messages to it) with
    `revierlotse.turns.TurnGate`, and `MessageProcessor._run_prediction_loop` so the
    turn log learns intent, confidence and actions from the tracker.
    """
    from rasa.core.agent import Agent
    from rasa.core.processor import MessageProcessor

    from revierlotse.settings import get_settings
    from revierlotse.turns import TurnGate, record_tracker

    gate = TurnGate(get_settings())
    handle_message = Agent.handle_message
    run_prediction_loop = MessageProcessor._run_prediction_loop

    async def guarded_handle_message(self: Agent, message):
        return await gate.handle(handle_message, self, message)

    async def recorded_prediction_loop(self: MessageProcessor, output_channel, tracker) -> None:
        try:
            await run_prediction_loop(self, output_channel, tracker)
        finally:
            record_tracker(tracker)

    Agent.handle_message = guarded_handle_message
    MessageProcessor._run_prediction_loop = recorded_prediction_loop


def apologise_when_actions_fail() -> None:
    """Action server down, failing or slower than ACTION_TIMEOUT_SECONDS: apologise.

    Stock Rasa logs the error and the user gets no reply at all (and waits up to five
    minutes for a hung action server). See `revierlotse.turns.run_remote_action`.
    """
    from rasa.core.actions.action import RemoteAction

    from revierlotse.settings import get_settings
    from revierlotse.turns import run_remote_action

    settings = get_settings()
    run = RemoteAction.run

    async def run_with_apology(self: RemoteAction, output_channel, nlg, tracker, domain):
        return await run_remote_action(run, self, output_channel, nlg, tracker, domain,
                                       settings.action_timeout_seconds, settings.knowledge_dir)

    RemoteAction.run = run_with_apology
