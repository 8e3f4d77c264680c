"""Supervision the user has: their own queries (``--queries``) and labelled pairs (``--train-data``).

>>> from fieldtune.supervision import read_queries, read_train_data, split_dev
>>> queries = read_queries("search-log.txt")                      # doctest: +SKIP
>>> labelled = read_train_data("scifact/", corpus_ids)             # doctest: +SKIP
>>> train, dev = split_dev(queries, 0.2, seed=0)                   # doctest: +SKIP

Evaluation queries are never read: from a BEIR directory only the queries
judged in ``qrels/train.tsv`` (and, for unlabelled queries, ``qrels/dev.tsv``)
are taken, and any query ``qrels/test.tsv`` also judges is left out
(:mod:`fieldtune.supervision.beir`). See :mod:`~fieldtune.supervision.queries`
and :mod:`~fieldtune.supervision.labelled` for the layouts.
"""

from __future__ import annotations

from fieldtune.supervision.beir import EVALUATION_SPLIT, TRAINING_SPLITS
from fieldtune.supervision.common import QueryFormat, SupervisionReport, normalise
from fieldtune.supervision.labelled import read_train_data
from fieldtune.supervision.queries import read_queries
from fieldtune.supervision.split import MIN_DEV, split_dev

__all__ = [
    "EVALUATION_SPLIT",
    "MIN_DEV",
    "TRAINING_SPLITS",
    "QueryFormat",
    "SupervisionReport",
    "normalise",
    "read_queries",
    "read_train_data",
    "split_dev",
]
