"""A small synthetic corpus with planted technical terms, big enough for a real (tiny) build."""

from __future__ import annotations

import json
import random
from pathlib import Path

CONCEPTS = [
    ("Kostka polynomial", "a q-analogue of the Kostka number that counts tableaux with charge"),
    ("Hall algebra", "an associative algebra built from extensions of finite modules"),
    ("random graph", "a graph whose edges are chosen independently with a fixed probability"),
    ("Lie algebra", "a vector space with an alternating bracket satisfying the Jacobi identity"),
    ("Hilbert space", "a complete inner product space"),
    ("Markov chain", "a random process whose next state depends only on the current state"),
    ("Banach space", "a complete normed vector space"),
    ("Galois group", "the group of field automorphisms fixing the base field"),
    ("heat kernel", "the fundamental solution of the heat equation on a manifold"),
    ("spectral gap", "the difference between the two largest eigenvalues of an operator"),
    ("Young tableau", "a filling of a Young diagram with increasing rows and columns"),
    ("elliptic curve", "a smooth projective curve of genus one with a marked point"),
    ("moduli space", "a space whose points parametrise isomorphism classes of objects"),
    ("Fourier transform", "an integral transform that decomposes a function into frequencies"),
    ("convex polytope", "the convex hull of finitely many points in Euclidean space"),
    ("Ramsey number", "the least order of a complete graph forcing a monochromatic clique"),
]
FILLER = [
    "We give explicit bounds and several examples.",
    "Our approach combines combinatorial and analytic arguments.",
    "Applications to related problems are discussed in the final section.",
    "The proof relies on a careful induction on the dimension.",
    "Numerical experiments illustrate the sharpness of the estimates.",
]


def synthetic_corpus(n_docs: int = 80, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    docs = []
    for i in range(n_docs):
        main, other = rng.sample(CONCEPTS, 2)
        sentences = [
            f"A {main[0]} is {main[1]}.",
            f"In this note we study the {main[0]} and its relation to the {other[0]}.",
            f"We show that every {main[0]} admits a canonical decomposition.",
            rng.choice(FILLER),
            f"As a consequence the {other[0]} inherits a natural grading.",
            rng.choice(FILLER),
        ]
        docs.append(
            {"_id": f"doc{i:03d}", "title": f"On the {main[0]} and the {other[0]}", "text": " ".join(sentences)}
        )
    return docs


def write_corpus(path: Path, n_docs: int = 80, seed: int = 0) -> Path:
    path.write_text("".join(json.dumps(d) + "\n" for d in synthetic_corpus(n_docs, seed)), encoding="utf-8")
    return path
