"""Custom Rasa NLU components of Revierlotse."""
