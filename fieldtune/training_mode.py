"""What a build trains (an import-free module, so the command line can offer the choice at once)."""

from __future__ import annotations

from enum import Enum


class TrainingMode(str, Enum):
    """The whole model on concept-graph pairs, the query encoder against a teacher, or both.

    ``auto`` adapts the query side when the user gives queries (``--queries``) or labelled pairs
    (``--train-data``) and trains the full model otherwise.
    """

    AUTO = "auto"
    FULL = "full"
    QUERY = "query"
    BOTH = "both"
