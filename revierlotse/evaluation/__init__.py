"""Measuring answer quality (NLU accuracy against baselines)."""
