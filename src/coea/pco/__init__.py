"""Periodic Collaborative Optimization: the closed loop between the Novelty and the Relevance LLM."""
