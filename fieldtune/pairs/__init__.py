"""Training pairs from the concept graph, split by concept, with a leakage check.

Pair kinds (see :class:`~fieldtune.types.PairKind`), one generator module each
(:mod:`.concept` makes both concept kinds in one pass, see its docstring):

- :mod:`.concept`: a concept's name or description -> chunks where it is central;
- :mod:`.edge`: a concept -> central chunks of a neighbouring concept (weighted by edge type);
- :mod:`.title`: a document's title -> its chunks;
- :mod:`.sentence`: a sentence -> the rest of its chunk (a derived text).

:func:`generate_pairs` runs the registered generators (:data:`PAIR_GENERATORS`,
in registration order) that make a kind selected in :class:`PairConfig`, and
deduplicates their pairs. Each generator caps its own pairs per concept or
document, so frequent concepts do not drown the rest.

The split is by *group* (the concept for concept/edge pairs, the document for
title/sentence pairs), and is made leak-free by construction: no training
anchor equals a dev/test anchor, and no training anchor mentions a dev/test
concept by name or alias. :func:`check_leakage` verifies this independently
and runs on every build. The test concepts become a derived BEIR evaluation
set: concept name -> the chunks where that concept is central.

Adding a pair generator
-----------------------
A new generator (say, pseudo-queries written by a teacher model for each
chunk) is one new module and one registry line:

1. ``fieldtune/pairs/pseudo_query.py`` with a class that has a ``name``, the
   ``kinds`` of pairs it makes, and ``generate(chunks, graph, config)``
   returning :class:`GeneratedPairs` (pairs, plus the texts of any positive ids
   that are not chunk ids). Pairs may carry the teacher's ``score`` (and
   ``negative_scores``) for score-based losses.
2. ``PAIR_GENERATORS.register(PseudoQueryPairs.name, PseudoQueryPairs())`` in
   :mod:`fieldtune.pairs.generators`, where the line's position decides when it runs.

Its pairs go through the same deduplication, split and leakage filter as
every other kind. A kind that no :class:`~fieldtune.types.PairKind` names yet
also needs its member there (the pairs files store the kind by value).
"""

from __future__ import annotations

from fieldtune.pairs.base import ConceptGraphLike, GeneratedPairs, GraphParts, PairGenerator
from fieldtune.pairs.config import PairConfig
from fieldtune.pairs.derived import derived_eval_set
from fieldtune.pairs.edge import EDGE_WEIGHTS
from fieldtune.pairs.generate import PairSet, candidate_pairs, generate_pairs, selected_generators
from fieldtune.pairs.generators import PAIR_GENERATORS
from fieldtune.pairs.leakage import LeakageReport, check_leakage
from fieldtune.pairs.sentence import REST_SEPARATOR
from fieldtune.pairs.split import Split, assign_split
from fieldtune.pairs.text import mention_pattern, normalize_text

__all__ = [
    "EDGE_WEIGHTS",
    "PAIR_GENERATORS",
    "REST_SEPARATOR",
    "ConceptGraphLike",
    "GeneratedPairs",
    "GraphParts",
    "LeakageReport",
    "PairConfig",
    "PairGenerator",
    "PairSet",
    "Split",
    "assign_split",
    "candidate_pairs",
    "check_leakage",
    "derived_eval_set",
    "generate_pairs",
    "mention_pattern",
    "normalize_text",
    "selected_generators",
]
