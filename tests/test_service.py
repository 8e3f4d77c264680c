"""The HTTP search service over a tiny index built with the bundled model (offline, ~1 minute)."""

from __future__ import annotations

import pytest

pytest.importorskip(
    "fastapi", reason="the service needs the serve extra: pip install 'fieldtune[serve]'"
)
pytest.importorskip("httpx", reason="TestClient needs httpx (the dev extra)")

from fastapi.testclient import TestClient  # noqa: E402

from fieldtune.search import Index  # noqa: E402
from fieldtune.search.options import MAX_K  # noqa: E402
from fieldtune.search.service import create_app  # noqa: E402
from fieldtune.types import Document  # noqa: E402

KEY = "s3cret-key"
#: The app answers only the host names it is served on (see tests/test_hostile_service.py).
LOCAL = "http://127.0.0.1"
TOPICS = [
    (
        "kostka",
        "Kostka numbers",
        "Kostka numbers count semistandard Young tableaux of a given shape and weight.",
    ),
    (
        "chaperone",
        "Protein folding",
        "Chaperone proteins assist the folding of newly made polypeptide chains.",
    ),
    (
        "volcano",
        "Volcanic eruptions",
        "Magma rising through the crust erupts as lava, ash and gas from a volcano.",
    ),
    (
        "tides",
        "Ocean tides",
        "Tides are the rise and fall of sea levels caused by the pull of the moon.",
    ),
    (
        "sorting",
        "Quicksort",
        "Quicksort partitions an array around a pivot and sorts both parts recursively.",
    ),
    (
        "inflation",
        "Inflation",
        "Central banks raise interest rates to slow inflation, the rise of prices.",
    ),
    (
        "vaccine",
        "Vaccines",
        "A vaccine trains the immune system to recognise a pathogen by a harmless antigen.",
    ),
    (
        "bread",
        "Sourdough bread",
        "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria.",
    ),
    (
        "chess",
        "Chess openings",
        "The Sicilian Defence answers white's king pawn opening with the c-pawn.",
    ),
    (
        "glacier",
        "Glaciers",
        "Glaciers are slow rivers of ice that carve valleys as they flow downhill.",
    ),
    (
        "transistor",
        "Transistors",
        "A transistor is a semiconductor device that amplifies or switches signals.",
    ),
    (
        "bees",
        "Honey bees",
        "Honey bees tell hive mates the direction of flowers with a waggle dance.",
    ),
    (
        "notes/coffee.md",
        "Coffee roasting",
        "Roasting coffee beans drives the Maillard reaction: aroma and brown colour.",
    ),
    (
        "markup",
        "<b>Tags</b> & <script>window.__pwned = 1</script>",
        "Angle brackets <i>must</i> show as text & never as markup in a page.",
    ),
    (
        "parabola",
        "The 𝑥² parabola",
        "The curve 𝑦 = 𝑥² is a parabola; every parabola has one focus and one directrix.",
    ),
]
#: query -> the document that must come first in every mode.
EASY = {
    "semistandard Young tableaux shape weight": "kostka",
    "lava and ash from a volcano": "volcano",
    "roasting coffee beans": "notes/coffee.md",
    "parabola focus directrix": "parabola",
}


def service_documents() -> list[Document]:
    """The tiny corpus (every other document carries ``concepts`` metadata)."""
    return [
        Document(id=i, title=t, text=x, metadata={"concepts": [t.lower()]} if n % 2 else {})
        for n, (i, t, x) in enumerate(TOPICS)
    ]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.mktemp("cache")))
        root = tmp_path_factory.mktemp("indexes") / "service"
        return Index.build(
            service_documents(), root, model="minilm", max_tokens=64, overlap=8, progress=False
        )


@pytest.fixture(scope="module")
def client(index: Index) -> TestClient:
    return TestClient(create_app(index), raise_server_exceptions=False, base_url=LOCAL)


@pytest.fixture(scope="module")
def keyed(index: Index) -> TestClient:
    return TestClient(create_app(index, api_key=KEY), raise_server_exceptions=False, base_url=LOCAL)


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
def test_search_ranks_the_planted_answer_first(client: TestClient, mode: str) -> None:
    for query, answer in EASY.items():
        response = client.get("/search", params={"q": query, "mode": mode, "k": 5})
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["query"] == query and body["mode"] == mode and body["k"] == 5
        assert body["dim"] == 384 and body["took_ms"] >= 0
        results = body["results"]
        assert results[0]["doc_id"] == answer, (mode, query, results)
        assert [r["rank"] for r in results] == list(range(1, len(results) + 1))
        scores = [r["score"] for r in results]
        assert scores == sorted(scores, reverse=True)


def test_result_fields_highlights_and_concepts(client: TestClient) -> None:
    top = client.get("/search", params={"q": "honey bees waggle dance", "k": 1}).json()["results"][
        0
    ]
    assert set(top) == {
        "rank",
        "doc_id",
        "score",
        "title",
        "chunk_id",
        "passage",
        "snippet",
        "highlights",
        "concepts",
        "chunk_concepts",
    }
    assert top["doc_id"] == "bees" and top["concepts"] == ["honey bees"]
    words = {top["snippet"][s:e].lower() for s, e in top["highlights"]}
    assert {"bees", "waggle", "dance"} <= words


def test_dim_funnel_and_chunks(client: TestClient, index: Index) -> None:
    small = index.dims[-1]
    body = client.get("/search", params={"q": "lava and ash", "dim": small, "mode": "dense"}).json()
    assert body["dim"] == small and body["results"][0]["doc_id"] == "volcano"
    chunks = client.get("/search", params={"q": "lava", "chunks": "true", "mode": "bm25"}).json()
    assert chunks["results"][0]["chunk_id"].startswith("volcano#")


def test_documents_route(client: TestClient) -> None:
    body = client.get("/documents/bees").json()
    assert body == {
        "id": "bees",
        "title": "Honey bees",
        "text": TOPICS[11][2],
        "metadata": {"concepts": ["honey bees"]},
    }
    assert client.get("/documents/notes/coffee.md").json()["title"] == "Coffee roasting"
    missing = client.get("/documents/no-such-doc")
    assert missing.status_code == 404
    assert (
        missing.json()["error"] == "unknown_document" and "no-such-doc" in missing.json()["message"]
    )


def test_health(client: TestClient, index: Index) -> None:
    body = client.get("/health").json()
    assert body["status"] == "ok" and body["auth_required"] is False
    assert body["index"]["dims"] == index.dims and body["index"]["modes"] == index.modes
    assert body["index"]["counts"]["documents"] == len(TOPICS)
    assert body["defaults"]["mode"] in index.modes and body["limits"]["max_k"] == MAX_K


def test_openapi_lists_the_routes(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert {"/search", "/documents/{doc_id}", "/health"} <= set(schema["paths"])
    names = {p["name"] for p in schema["paths"]["/search"]["get"]["parameters"]}
    assert names == {"q", "k", "mode", "dim", "chunks", "filter"}
    assert client.get("/docs").status_code == 200


def test_page_and_assets_are_served(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "script-src 'self'" in page.headers["content-security-policy"]
    for asset in ("static/app.js", "static/style.css"):
        assert asset in page.text and client.get("/" + asset).status_code == 200
    assert "http://" not in page.text and "https://" not in page.text  # nothing external


def test_api_key(keyed: TestClient) -> None:
    params = {"q": "volcano"}
    missing = keyed.get("/search", params=params)
    assert missing.status_code == 401 and missing.json()["error"] == "unauthorized"
    assert keyed.get("/search", params=params, headers={"X-API-Key": "wrong"}).status_code == 401
    assert keyed.get("/search", params=params, headers={"X-API-Key": KEY}).status_code == 200
    assert keyed.get("/search", params={**params, "api_key": KEY}).status_code == 200
    assert keyed.get("/documents/bees").status_code == 401
    assert keyed.get("/documents/bees", headers={"X-API-Key": KEY}).status_code == 200
    assert keyed.get("/openapi.json").status_code == 401
    health = keyed.get("/health")
    assert health.status_code == 200 and health.json()["auth_required"] is True
    for open_path in ("/", "/static/app.js", "/static/style.css"):
        assert keyed.get(open_path).status_code == 200, open_path


LONG = "x" * 1001
BAD = [
    ({}, "q"),
    ({"q": ""}, "q"),
    ({"q": "   "}, "q"),
    ({"q": LONG}, "q"),
    ({"q": "volcano", "k": "0"}, "k"),
    ({"q": "volcano", "k": str(MAX_K + 1)}, "k"),
    ({"q": "volcano", "k": "abc"}, "k"),
    ({"q": "volcano", "k": "-1"}, "k"),
    ({"q": "volcano", "k": "1e400"}, "k"),
    ({"q": "volcano", "mode": "nope"}, "mode"),
    ({"q": "volcano", "mode": ""}, "mode"),
    ({"q": "volcano", "dim": "7"}, "dim"),
    ({"q": "volcano", "dim": "abc"}, "dim"),
    ({"q": "volcano", "dim": "-384"}, "dim"),
    ({"q": "volcano", "chunks": "maybe"}, "chunks"),
]


@pytest.mark.parametrize("params,parameter", BAD, ids=[f"{p}:{i}" for i, (_, p) in enumerate(BAD)])
def test_bad_input_is_a_4xx_naming_what_is_allowed(
    client: TestClient, index: Index, params: dict[str, str], parameter: str
) -> None:
    response = client.get("/search", params=params)
    assert 400 <= response.status_code < 500, response.text
    body = response.json()
    assert body["error"] == "invalid_parameter" and body["parameter"] == parameter
    allowed = {"q": "1000 characters", "k": f"1 to {MAX_K}", "chunks": "true or false"}
    if parameter == "mode":
        assert body["allowed"] == index.modes
        assert all(mode in body["message"] for mode in index.modes)
    elif parameter == "dim":
        assert body["allowed"] == index.dims
        assert all(str(dim) in body["message"] for dim in index.dims)
    else:
        assert allowed[parameter] in body["allowed"] and allowed[parameter] in body["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    "path",
    [
        "/search?q=volcano&q=&k=2",
        "/search?q=%F0%9F%8C%8B%20volcano%00",
        "/search?q=volcano&k=2.5",
        "/search?q=volcano&dim=",
        "/documents/%2e%2e%2fetc%2fpasswd",
        "/documents/",
        "/nope",
    ],
)
def test_odd_requests_never_give_500(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code < 500, response.text
    assert response.headers["content-type"].startswith("application/json")


def test_wrong_method_is_a_json_405(client: TestClient) -> None:
    response = client.post("/search", params={"q": "volcano"})
    assert response.status_code == 405 and response.json()["error"] == "http_error"


@pytest.mark.parametrize("query", ["the of a", "\u200b\u200b", "?!"])
def test_query_without_indexed_words_is_not_a_server_error(client: TestClient, query: str) -> None:
    response = client.get("/search", params={"q": query, "mode": "bm25"})
    assert response.status_code == 200, response.text


def test_unexpected_errors_are_a_500_without_traceback(index: Index, monkeypatch) -> None:
    app = create_app(index)

    def boom(*args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(index, "search", boom)
    response = TestClient(app, raise_server_exceptions=False, base_url=LOCAL).get(
        "/search", params={"q": "volcano"}
    )
    assert response.status_code == 500
    assert response.json()["error"] == "internal_error"
    assert "secret" not in response.text and "Traceback" not in response.text


def test_search_sees_updates_without_restart(index: Index) -> None:
    client = TestClient(create_app(index), raise_server_exceptions=False, base_url=LOCAL)
    new = Document(id="okapi", title="Okapi", text="The okapi is a forest giraffe of the Congo.")
    index.add([new])
    try:
        body = client.get("/search", params={"q": "okapi forest giraffe", "mode": "bm25"}).json()
        assert body["results"][0]["doc_id"] == "okapi"
        assert client.get("/health").json()["index"]["counts"]["documents"] == len(TOPICS) + 1
    finally:
        index.delete(["okapi"])
    assert client.get("/documents/okapi").status_code == 404
