"""The order of the build's stages: the one list that the registry, ``build`` and the stage commands derive from.

Kept free of imports so the command line can list the stage commands without
loading what the stages use (``fieldtune --help`` answers at once). Each entry
names the module under :mod:`fieldtune.stages` that defines the stage.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class StageEntry:
    name: str
    module: str
    #: the help line of ``fieldtune <name>`` (stages with ``command=True`` get a command)
    summary: str
    command: bool = False


ORDER: tuple[StageEntry, ...] = (
    StageEntry("ingest", "ingest", "Read the corpus into documents.jsonl."),
    StageEntry("chunk", "chunk", "Cut documents into token-bounded chunks (chunks.jsonl)."),
    StageEntry("concepts", "concepts", "Ingest, chunk and extract the concept graph (graph.json, graph.graphml).",
               command=True),
    StageEntry("pairs", "pairs",
               "... then training pairs split by concept, the leakage check, and the derived test set.",
               command=True),
    StageEntry("queries", "queries", "... then read the user's queries or labelled pairs (--queries, --train-data)."),
    StageEntry("teacher", "teacher", "... then score each query's candidate chunks with the teacher."),
    # No `fieldtune adapt` stage command: that name is the search service's loop (adapt an index's query encoder).
    StageEntry("adapt", "adapt", "... then adapt the query encoder to the teacher (documents keep base vectors)."),
    StageEntry("mine", "mine", "... then hard negatives with false-negative control.", command=True),
    StageEntry("train", "train", "... then fine-tune (MNRL inside MatryoshkaLoss) into training/model.", command=True),
    StageEntry("gate", "gate",
               "... then score trained / averaged / base on the dev split and install the best as model/."),
    StageEntry("eval", "evaluate", "... then evaluate model/ against the base and BM25 (eval/)."),
    StageEntry("card", "card", "... then write the model card (model/README.md)."),
)
