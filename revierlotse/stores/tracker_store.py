"""The tracker store endpoints.yml names: `revierlotse.stores.tracker_store.DatabaseTrackerStore`.

It is built on Rasa 3.6.21's private `SQLTrackerStore` parts, so it lives with the rest
of that in `revierlotse.rasa36.tracker_store`; this is its public path.
"""

from revierlotse.rasa36.tracker_store import (  # noqa: F401
    CONNECT_TIMEOUT_SECONDS,
    KEPT_EVENTS,
    KEPT_TRACKERS,
    DatabaseTrackerStore,
)

__all__ = ["CONNECT_TIMEOUT_SECONDS", "DatabaseTrackerStore", "KEPT_EVENTS", "KEPT_TRACKERS"]
