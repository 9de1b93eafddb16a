"""DSIE: long-term user embeddings, RQ-VAE semantic IDs, groups, short-term interests and profiles."""
