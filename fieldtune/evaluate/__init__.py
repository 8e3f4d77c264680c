"""Honest retrieval evaluation: trusted metrics, baselines, Matryoshka dimensions, paired-bootstrap CIs."""

from __future__ import annotations

from fieldtune.evaluate.beir import load_beir
from fieldtune.evaluate.metrics import DEFAULT_METRICS, parse_metric

__all__ = ["DEFAULT_METRICS", "load_beir", "parse_metric"]
