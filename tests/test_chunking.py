from __future__ import annotations

import random

import pytest

from fieldtune.chunking import ChunkingConfig, chunk_document, chunk_documents, sentence_starts, tokenizer_offsets
from fieldtune.types import Document

WORDS = [
    "lattice", "polytope", "Ehrhart", "quasi-polynomial", "symmetric",
    "function", "Schur", "positivity", "tableau", "crystal",
]


def _random_text(rng: random.Random, n_sentences: int) -> str:
    sentences = []
    for _ in range(n_sentences):
        length = rng.choice([3, 8, 15, 40, 120])  # some sentences longer than a chunk
        sentences.append(" ".join(rng.choice(WORDS) for _ in range(length)).capitalize() + ".")
    return (
        ("  " if rng.random() < 0.5 else "")
        + " ".join(sentences)
        + ("\n\n" + "A second paragraph here." if rng.random() < 0.5 else "")
    )


@pytest.mark.parametrize("max_tokens,overlap", [(16, 0), (32, 4), (64, 16), (256, 32)])
def test_chunks_respect_limit_and_cover_every_token(tokenizer, max_tokens: int, overlap: int) -> None:
    rng = random.Random(max_tokens)
    offsets = tokenizer_offsets(tokenizer)
    config = ChunkingConfig(max_tokens, overlap)
    for n in range(20):
        doc = Document(id=f"doc{n}", title="T", text=_random_text(rng, rng.randint(1, 30)))
        chunks = chunk_document(doc, offsets, config)
        covered = set()
        for chunk in chunks:
            assert chunk.text == doc.text[chunk.start:chunk.end]
            retokenized = tokenizer(chunk.text, add_special_tokens=False)["input_ids"]
            assert len(retokenized) <= max_tokens
            assert chunk.n_tokens <= max_tokens
            covered.update(range(chunk.start, chunk.end))
            assert chunk.title == "T"
        for start, end in offsets(doc.text)[0]:  # every token lies inside some chunk
            assert set(range(start, end)) <= covered, (doc.id, start, end)
        assert [c.id for c in chunks] == [f"doc{n}#{i}" for i in range(len(chunks))]


def test_chunk_ids_are_stable_across_rebuilds(tokenizer) -> None:
    docs = [Document(id=f"a/{i}", text=_random_text(random.Random(i), 12)) for i in range(5)]
    first = chunk_documents(docs, tokenizer, ChunkingConfig(32, 8))
    second = chunk_documents(docs, tokenizer, ChunkingConfig(32, 8))
    assert first == second


def test_cuts_fall_on_sentence_boundaries_when_they_fit(tokenizer) -> None:
    sentence = "The Ehrhart polynomial counts lattice points in dilates of a polytope."
    doc = Document(id="x", text=" ".join([sentence] * 12))
    chunks = chunk_document(doc, tokenizer_offsets(tokenizer), ChunkingConfig(40, 0))
    assert len(chunks) > 1
    for chunk in chunks:
        assert chunk.text.startswith("The Ehrhart") and chunk.text.endswith("polytope.")


def test_overlap_repeats_text_between_neighbours(tokenizer) -> None:
    doc = Document(id="x", text=" ".join(f"word{i}" for i in range(300)))
    chunks = chunk_document(doc, tokenizer_offsets(tokenizer), ChunkingConfig(50, 10))
    for left, right in zip(chunks, chunks[1:], strict=False):
        assert right.start < left.end  # they share a span


def test_title_only_document_gives_one_empty_chunk(tokenizer) -> None:
    chunks = chunk_document(
        Document(id="t", title="Only a title", text=""), tokenizer_offsets(tokenizer), ChunkingConfig()
    )
    assert len(chunks) == 1 and chunks[0].id == "t#0" and chunks[0].text == "" and chunks[0].title == "Only a title"


def test_sentence_starts() -> None:
    text = "First one. Second one! Third?\n\nNew paragraph"
    assert [text[i:i + 3] for i in sentence_starts(text)] == ["Fir", "Sec", "Thi", "New"]


@pytest.mark.parametrize("max_tokens,overlap", [(4, 0), (64, 40), (64, -1)])
def test_bad_config_is_refused(tokenizer, max_tokens: int, overlap: int) -> None:
    with pytest.raises(ValueError, match="must"):
        chunk_documents([Document(id="a", text="x")], tokenizer, ChunkingConfig(max_tokens, overlap))
