"""Knowledge base: YAML source -> validated -> SQLAlchemy database -> query layer.

The public interface for actions and tools: `KnowledgeBase` (questions in, `Answer`s
out), `KnowledgeUnavailable`, and `QUALIFIER_NAMES` (what a user can tell about
themselves: level, background, company_type).
"""

from revierlotse.kb.models import QUALIFIER_NAMES
from revierlotse.kb.query import Answer, KnowledgeBase, KnowledgeUnavailable

__all__ = ["Answer", "KnowledgeBase", "KnowledgeUnavailable", "QUALIFIER_NAMES"]
