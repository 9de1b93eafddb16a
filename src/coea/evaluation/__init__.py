"""Evaluation: metrics, baselines, the method registry and the evaluate job."""
