"""Knowledge base: YAML source -> validated -> SQLAlchemy database -> query layer."""

from revierlotse.kb.query import Answer, KnowledgeBase, KnowledgeUnavailable

__all__ = ["Answer", "KnowledgeBase", "KnowledgeUnavailable"]
