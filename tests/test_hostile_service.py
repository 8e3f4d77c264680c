"""Hostile requests to the HTTP service (issue 13, items 11-14).

On commit 59c04d1: ``/health`` showed the corpus, model and index paths to anyone; any
``Host`` was answered (DNS rebinding); the key could only come from ``--api-key`` or the
environment, not a file; and a 200 KB URL reset the connection instead of answering 414.
"""

from __future__ import annotations

import http.client
import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("fastapi", reason="the service needs the serve extra: pip install 'fieldtune[serve]'")
pytest.importorskip("httpx", reason="TestClient needs httpx (the dev extra)")

import uvicorn  # noqa: E402
from fastapi.testclient import TestClient  # noqa: E402

from fieldtune.search import Index  # noqa: E402
from fieldtune.search.guards import allowed_hosts, host_name  # noqa: E402
from fieldtune.search.service import create_app, serve_in_background  # noqa: E402
from fieldtune.types import Document  # noqa: E402
from tests.conftest import build_tiny_index, run_cli  # noqa: E402

KEY = "hostile-key"
LOCAL = "http://127.0.0.1"
DOCUMENTS = [
    Document(id="volcano", title="Volcanoes", text="Magma rising through the crust erupts as lava and ash."),
    Document(id="tides", title="Ocean tides", text="Tides are the rise and fall of the sea caused by the moon."),
    Document(id="bees", title="Honey bees", text="Honey bees dance to tell hive mates where flowers are."),
]


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    index = build_tiny_index(tmp_path_factory, DOCUMENTS, "hostile-service")
    index.search("warm up", k=1, mode="dense")
    return index


# -- 11: /health is minimal without the key -------------------------------------------------------


def test_health_without_the_key_says_only_that_it_is_up(index: Index, tmp_path_factory) -> None:
    client = TestClient(create_app(index, api_key=KEY), base_url=LOCAL)
    open_body = client.get("/health")
    assert open_body.status_code == 200
    assert open_body.json() == {"status": "ok", "auth_required": True}
    root = str(Path(index.info()["path"]))
    assert root not in open_body.text and "/" not in json.dumps(open_body.json())
    for keyed in (client.get("/health", headers={"X-API-Key": KEY}), client.get("/health", params={"api_key": KEY})):
        assert keyed.status_code == 200 and keyed.json()["index"]["dims"] == index.dims
    wrong = client.get("/health", headers={"X-API-Key": "wrong"}).json()
    assert wrong == {"status": "ok", "auth_required": True}


def test_health_without_a_key_set_stays_detailed(index: Index) -> None:
    body = TestClient(create_app(index), base_url=LOCAL).get("/health").json()
    assert body["auth_required"] is False and body["index"]["counts"]["documents"] == len(DOCUMENTS)


# -- 12: Host header ---------------------------------------------------------------------------


@pytest.mark.parametrize("base", ["http://127.0.0.1:8000", "http://localhost", "http://LOCALHOST.:9", "http://[::1]:8000"])
def test_loopback_hosts_are_answered(index: Index, base: str) -> None:
    response = TestClient(create_app(index), base_url=base).get("/search", params={"q": "lava"})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("path", ["/", "/health", "/search?q=lava", "/documents/bees", "/static/app.js"])
def test_a_foreign_host_is_refused(index: Index, path: str) -> None:
    """A page on evil.example whose DNS now points at 127.0.0.1 cannot read the server."""
    response = TestClient(create_app(index), base_url="http://evil.example:8000").get(path)
    assert response.status_code == 421
    body = response.json()
    assert body["error"] == "host_not_allowed" and "--allow-host evil.example" in body["message"]
    assert "lava" not in response.text


def test_allowed_hosts_add_the_bound_address_and_given_names() -> None:
    hosts = allowed_hosts("0.0.0.0", ["Search.Example.ORG:8443", "[fd00::1]"])
    assert hosts == ("127.0.0.1", "localhost", "::1", "0.0.0.0", "search.example.org", "fd00::1")
    assert host_name("[::1]:8000") == "::1" and host_name("example.com.") == "example.com"
    assert host_name("fd00::1") == "fd00::1"  # a bare IPv6 address keeps its colons


def test_a_given_name_and_the_wildcard_are_answered(index: Index) -> None:
    named = create_app(index, allowed_hosts=allowed_hosts("127.0.0.1", ["search.example.org"]))
    assert TestClient(named, base_url="http://search.example.org").get("/health").status_code == 200
    assert TestClient(named, base_url="http://other.example.org").get("/health").status_code == 421
    anything = create_app(index, allowed_hosts=allowed_hosts("127.0.0.1", ["*"]))
    assert TestClient(anything, base_url="http://other.example.org").get("/health").status_code == 200


# -- 12, 13: `fieldtune serve` options ---------------------------------------------------------


@pytest.fixture
def served(index: Index, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Run `fieldtune serve` up to uvicorn.run, and keep what it was given instead of serving."""
    captured: dict[str, Any] = {}
    monkeypatch.setattr(Index, "open", classmethod(lambda cls, path: index))
    monkeypatch.setattr(uvicorn, "run", lambda app, **kwargs: captured.update(app=app, **kwargs))
    monkeypatch.delenv("FIELDTUNE_API_KEY", raising=False)
    return captured


def _serve(args: list[str], capsys, monkeypatch) -> tuple[int, str, str]:
    return run_cli(["serve", "--index", "unused", *args], capsys, monkeypatch)


def test_serve_reads_the_key_from_a_file(served: dict[str, Any], tmp_path: Path, capsys, monkeypatch) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(f"{KEY}\n", encoding="utf-8")
    monkeypatch.setenv("FIELDTUNE_API_KEY", "")  # empty means unset (benchmarks/load_http.py sets it so)
    code, _, err = _serve(["--api-key-file", str(key_file)], capsys, monkeypatch)
    assert code == 0, err
    client = TestClient(served["app"], base_url=LOCAL)
    assert client.get("/search", params={"q": "lava"}).status_code == 401
    assert client.get("/search", params={"q": "lava"}, headers={"X-API-Key": KEY}).status_code == 200
    assert "ps" not in err  # no warning: the key was not on the command line


def test_serve_reads_the_key_from_the_environment(served: dict[str, Any], capsys, monkeypatch) -> None:
    monkeypatch.setenv("FIELDTUNE_API_KEY", KEY)
    code, _, err = _serve([], capsys, monkeypatch)
    assert code == 0, err
    client = TestClient(served["app"], base_url=LOCAL)
    assert client.get("/search", params={"q": "lava"}, headers={"X-API-Key": KEY}).status_code == 200
    assert client.get("/search", params={"q": "lava"}).status_code == 401


def test_a_key_on_the_command_line_is_warned_about(served: dict[str, Any], capsys, monkeypatch) -> None:
    code, _, err = _serve(["--api-key", KEY], capsys, monkeypatch)
    assert code == 0 and "shows in `ps`" in err and "FIELDTUNE_API_KEY" in err


@pytest.mark.parametrize(
    "content,problem", [(None, "cannot read"), ("", "is empty"), ("\n  \n", "is empty"), (b"\xff\xfe", "cannot read")]
)
def test_a_bad_key_file_exits_2_naming_it(served, tmp_path: Path, content, problem, capsys, monkeypatch) -> None:
    key_file = tmp_path / "key.txt"
    if isinstance(content, bytes):
        key_file.write_bytes(content)
    elif content is not None:
        key_file.write_text(content, encoding="utf-8")
    code, _, err = _serve(["--api-key-file", str(key_file)], capsys, monkeypatch)
    assert code == 2 and str(key_file) in err and problem in err and "Traceback" not in err
    assert "app" not in served


def test_two_sources_of_key_are_refused(served, tmp_path: Path, capsys, monkeypatch) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(KEY, encoding="utf-8")
    monkeypatch.setenv("FIELDTUNE_API_KEY", "other")
    code, _, err = _serve(["--api-key-file", str(key_file)], capsys, monkeypatch)
    assert code == 2 and "keep one" in err and "app" not in served


def test_serve_answers_its_host_and_allowed_names(served: dict[str, Any], capsys, monkeypatch) -> None:
    code, _, err = _serve(["--host", "0.0.0.0", "--allow-host", "search.example.org", "--api-key-file", "/dev/null"],
                          capsys, monkeypatch)
    assert code == 2  # /dev/null is an empty key file: nothing served
    code, _, err = _serve(["--host", "0.0.0.0", "--allow-host", "search.example.org"], capsys, monkeypatch)
    assert code == 0, err
    app = served["app"]
    assert TestClient(app, base_url="http://search.example.org").get("/health").status_code == 200
    assert TestClient(app, base_url="http://localhost:8000").get("/health").status_code == 200
    assert TestClient(app, base_url="http://evil.example").get("/health").status_code == 421
    assert served["h11_max_incomplete_event_size"] > 200_000  # room for item 14's 414


@pytest.mark.parametrize("name", ["http://search.example.org/", "", "two words"])
def test_a_url_is_not_a_host_name(served, name: str, capsys, monkeypatch) -> None:
    code, _, err = _serve(["--allow-host", name], capsys, monkeypatch)
    assert code == 2 and "--allow-host" in err and "app" not in served


def test_serve_on_all_interfaces_says_which_hosts_it_answers(served, capsys, monkeypatch) -> None:
    code, _, err = _serve(["--host", "0.0.0.0"], capsys, monkeypatch)
    assert code == 0 and "--allow-host NAME" in err and "without an API key" in err


# -- 14: an over-long URL gets 414 from a real server -------------------------------------------


def _get(base_url: str, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    host, port = base_url.removeprefix("http://").rsplit(":", 1)
    connection = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8")
    finally:
        connection.close()


def test_a_200_kb_url_gets_414_not_a_reset(index: Index) -> None:
    with serve_in_background(create_app(index)) as url:
        status, body = _get(url, "/search?q=" + "a" * 200_000)
        assert status == 414, body
        assert json.loads(body)["error"] == "uri_too_long"
        status, body = _get(url, "/search?q=lava&k=1")  # the server still answers
        assert status == 200 and json.loads(body)["results"][0]["doc_id"] == "volcano"
        long_query = "/search?q=" + "%F0%9F%8C%8B" * 1000  # 1,000 four-byte characters: the longest q allowed
        assert _get(url, long_query)[0] == 200
        assert _get(url, "/health", headers={"Host": "evil.example"})[0] == 421  # also on a real socket
