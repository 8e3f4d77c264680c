"""Offline demo data: corpora and labelled tasks that exist wherever torch is installed."""
