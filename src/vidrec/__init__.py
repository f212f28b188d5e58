"""vidrec: a three-stage video recommender (candidates -> scoring -> re-ranking)."""

__version__ = "0.1.0"
