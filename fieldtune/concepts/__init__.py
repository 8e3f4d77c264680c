"""The concepts stage: a graph of the field's concepts, found in the corpus.

>>> from fieldtune.concepts import build_graph, read_graph
>>> graph = build_graph(chunks)            # doctest: +SKIP
>>> graph.write("out/")                    # graph.json + graph.graphml  # doctest: +SKIP

See :mod:`fieldtune.concepts.graph` for the steps, and
:mod:`fieldtune.concepts.extractors` for plugging in another extractor.
"""

from __future__ import annotations

from fieldtune.concepts.config import ConceptConfig, NoConceptsError
from fieldtune.concepts.extractors import (
    EXTRACTORS,
    ConceptExtractor,
    ExtractionCache,
    TermCandidate,
    UnknownExtractorError,
    get_extractor,
    register_extractor,
    run_batches,
)
from fieldtune.concepts.graph import (
    GRAPH_GRAPHML,
    GRAPH_JSON,
    ConceptGraph,
    build_graph,
    read_graph,
)
from fieldtune.concepts.llm import LLMExtractor
from fieldtune.concepts.statistical import StatisticalExtractor

__all__ = [
    "EXTRACTORS",
    "GRAPH_GRAPHML",
    "GRAPH_JSON",
    "ConceptConfig",
    "ConceptExtractor",
    "ConceptGraph",
    "ExtractionCache",
    "LLMExtractor",
    "NoConceptsError",
    "StatisticalExtractor",
    "TermCandidate",
    "UnknownExtractorError",
    "build_graph",
    "get_extractor",
    "read_graph",
    "register_extractor",
    "run_batches",
]
