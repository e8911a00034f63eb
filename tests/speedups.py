"""The core end-to-end tests run once with the Rasa speed-ups and once without them.

A test module opts in by importing the fixture, which then stands for `bot` there:

    from tests.speedups import bot  # noqa: F401 - the fixture
"""

from __future__ import annotations

import pytest

WITH_AND_WITHOUT_SPEEDUPS = [pytest.param(True, id="speedups"), pytest.param(False, id="no-speedups")]


@pytest.fixture(params=WITH_AND_WITHOUT_SPEEDUPS)
def bot(request):
    """The running bot with RASA_SPEEDUPS on, then the one with them off: same replies."""
    return request.getfixturevalue("bot_with_speedups" if request.param else "bot_without_speedups")
