"""The pair-generator registry; registration order is the order in which generators run.

The order is part of the output: candidates are concatenated in this order
before deduplication, so reordering these lines changes which of two equal
anchors survives and the order of the pairs files.
"""

from __future__ import annotations

from fieldtune.pairs.base import PairGenerator
from fieldtune.pairs.concept import ConceptPairs
from fieldtune.pairs.edge import EdgePairs
from fieldtune.pairs.sentence import SentencePairs
from fieldtune.pairs.title import TitlePairs
from fieldtune.registry import Registry

PAIR_GENERATORS: Registry[PairGenerator] = Registry("pair generator")
PAIR_GENERATORS.register(ConceptPairs.name, ConceptPairs())
PAIR_GENERATORS.register(EdgePairs.name, EdgePairs())
PAIR_GENERATORS.register(TitlePairs.name, TitlePairs())
PAIR_GENERATORS.register(SentencePairs.name, SentencePairs())
