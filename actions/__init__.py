"""Custom actions; importing the modules registers their actions with the action server.

`feedback` comes first: `actions.actions` imports its `feedback_buttons`, and it
imports `actions.actions` only after defining them.
"""

from actions import feedback  # noqa: F401  (first, see above)
from actions import actions, privacy  # noqa: F401
