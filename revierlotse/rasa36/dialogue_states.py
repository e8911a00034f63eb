"""Dialogue states built once per conversation step, not from the start on every prediction.

Rasa's `Domain.states_for_tracker_history` replays the whole conversation into a fresh
tracker and derives one state per action, for every prediction: RulePolicy asks three
times per message (text and intent after the user's message, then after the action),
each time from the first event on. The states of a prefix of events depend on that
prefix only, so `IncrementalStates` keeps, per conversation, the replayed tracker and the
states derived so far, and when asked again for the same tracker (same event objects,
possibly more of them) replays only the new events.

The walk is Rasa's own loop body, unchanged; callers get fresh copies that keep the
sharing between states that Rasa's list has (a state may reuse the previous state's
user sub-state, and callers delete keys from the last one).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

CONVERSATIONS_KEPT = 256


@dataclass
class _Walk:
    """Rasa's loop state after replaying `events` (a prefix of the applied events)."""

    tracker: Any
    events: List[Any] = field(default_factory=list)
    states: List[Dict] = field(default_factory=list)
    last_ml_action_sub_state: Optional[Dict] = None
    turn_was_hidden: bool = False

    def visit(self, domain, tr, hide_rule_turn, omit_unset_slots, ignore_rule_only_turns, rule_only_data) -> None:
        """One pass of the loop body of Rasa 3.6.21's `Domain.states_for_tracker_history`."""
        from rasa.shared.core.constants import PREVIOUS_ACTION

        if ignore_rule_only_turns:
            if not self.turn_was_hidden:
                self.last_ml_action_sub_state = domain._get_prev_action_sub_state(tr)
            if not tr.followup_action and not tr.latest_action_name == tr.active_loop_name:
                self.turn_was_hidden = hide_rule_turn
            if self.turn_was_hidden:
                return
        state = domain.get_active_state(tr, omit_unset_slots=omit_unset_slots)
        if ignore_rule_only_turns:
            domain._remove_rule_only_features(state, rule_only_data)
            if self.states:
                domain._substitute_rule_only_user_input(state, self.states[-1])
            if self.last_ml_action_sub_state:
                state[PREVIOUS_ACTION] = self.last_ml_action_sub_state
        self.states.append(domain._clean_state(state))


def copy_states(states: List[Dict], copies: Optional[Dict[int, Any]] = None) -> List[Dict]:
    """Two-level copies of `states`; a sub-state object shared in `states` stays shared
    (`copies`: id of an original sub-state -> its copy, filled in)."""
    copies = {} if copies is None else copies
    out = []
    for state in states:
        new = {}
        for key, sub_state in state.items():
            copied = copies.get(id(sub_state))
            if copied is None:
                copied = copies[id(sub_state)] = dict(sub_state) if isinstance(sub_state, dict) else sub_state
            new[key] = copied
        out.append(new)
    return out


class IncrementalStates:
    """`states_for_tracker_history` with the replay kept between calls (see module doc)."""

    def __init__(self, size: int = CONVERSATIONS_KEPT) -> None:
        self._walks: "OrderedDict[Tuple, _Walk]" = OrderedDict()
        self._size = size

    def forget(self, sender_id: str) -> None:
        """Drop the replays kept for `sender_id` (its conversation was erased)."""
        for key in [key for key in self._walks if key[0] == sender_id]:
            del self._walks[key]

    def states(self, domain, tracker, omit_unset_slots=False, ignore_rule_only_turns=False,
               rule_only_data=None) -> List[Dict]:
        from rasa.shared.core.events import ActionExecuted

        events = tracker.applied_events()
        key = (tracker.sender_id, id(domain), tracker.is_rule_tracker, tuple(tracker.slots),
               omit_unset_slots, ignore_rule_only_turns, repr(rule_only_data))
        walk = self._walks.pop(key, None)
        if walk is None or not _extends(events, walk.events):
            walk = _Walk(tracker.init_copy())
        for event in events[len(walk.events):]:  # Rasa: yield before each action, then apply
            if isinstance(event, ActionExecuted):
                walk.visit(domain, walk.tracker, event.hide_rule_turn, omit_unset_slots, ignore_rule_only_turns,
                           rule_only_data)
            walk.tracker.update(event)
            walk.events.append(event)
        self._walks[key] = walk
        while len(self._walks) > self._size:
            self._walks.popitem(last=False)
        # Rasa's last `yield tracker, False`: the current state, on a copy of the loop state
        copies: Dict[int, Any] = {}
        states = copy_states(walk.states, copies)
        last_ml = walk.last_ml_action_sub_state
        if last_ml is not None:
            last_ml = copies.get(id(last_ml)) or dict(last_ml)
        tail = _Walk(walk.tracker, walk.events, states, last_ml, walk.turn_was_hidden)
        before = len(tail.states)
        tail.visit(domain, walk.tracker, False, omit_unset_slots, ignore_rule_only_turns, rule_only_data)
        if len(tail.states) > before:  # the current state may hold the kept tracker's own dicts
            ours = {id(copy) for copy in copies.values()} | {id(last_ml)}
            current = tail.states[-1]
            for key, sub_state in current.items():
                if isinstance(sub_state, dict) and id(sub_state) not in ours:
                    current[key] = dict(sub_state)
        return tail.states


def _extends(events: List[Any], prefix: List[Any]) -> bool:
    """Whether `events` starts with exactly the event objects of `prefix`."""
    return len(events) >= len(prefix) and all(a is b for a, b in zip(events, prefix))
