"""The search page end to end in a real headless Chromium (Selenium + Debian's chromedriver).

Skipped unless ``/usr/bin/chromium`` and ``/usr/bin/chromedriver`` exist (``.ci/install-browser``
installs them) and Selenium is installed. Run with ``pytest -m browser``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not (CHROMIUM.exists() and CHROMEDRIVER.exists()),
        reason=f"needs {CHROMIUM} and {CHROMEDRIVER}: run .ci/install-browser",
    ),
]
pytest.importorskip(
    "fastapi", reason="the service needs the serve extra: pip install 'fieldtune[serve]'"
)
webdriver = pytest.importorskip("selenium.webdriver", reason="needs selenium: pip install selenium")

from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support import expected_conditions as ec  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

from fieldtune.search import Index  # noqa: E402
from fieldtune.search.service import create_app, serve_in_background  # noqa: E402
from tests.test_service import TOPICS, service_documents  # noqa: E402

KEY = "browser-key"
WAIT = 30  # seconds; the machine may be busy


@pytest.fixture(scope="module")
def index(tmp_path_factory: pytest.TempPathFactory) -> Index:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.mktemp("cache")))
        root = tmp_path_factory.mktemp("indexes") / "browser"
        index = Index.build(service_documents(), root, max_tokens=64, overlap=8, progress=False)
    index.search("warm up", k=1, mode="dense")  # load the model before the page asks
    return index


@pytest.fixture(scope="module")
def base_url(index: Index) -> Iterator[str]:
    with serve_in_background(create_app(index)) as url:
        yield url


@pytest.fixture(scope="module")
def keyed_url(index: Index) -> Iterator[str]:
    with serve_in_background(create_app(index, api_key=KEY)) as url:
        yield url


@pytest.fixture(scope="module")
def driver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--disable-extensions",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    browser = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    browser.set_page_load_timeout(WAIT)
    try:
        yield browser
    finally:
        browser.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _open(driver: webdriver.Chrome, url: str) -> WebDriverWait:
    driver.get(url + "/")
    wait = WebDriverWait(driver, WAIT)
    wait.until(lambda d: len(Select(d.find_element(By.ID, "mode")).options) == 3)
    return wait


def _console_errors(driver: webdriver.Chrome) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def _search(driver: webdriver.Chrome, wait: WebDriverWait, query: str) -> list:
    driver.execute_script("document.getElementById('status').textContent = ''")
    box = driver.find_element(By.ID, "q")
    box.clear()
    box.send_keys(query, Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "result"))
    return driver.find_elements(By.CSS_SELECTOR, "#results li.result")


def test_search_then_open_the_document_and_come_back(driver, base_url: str) -> None:
    wait = _open(driver, base_url)
    assert Select(driver.find_element(By.ID, "mode")).first_selected_option.text == "hybrid"
    dims = [o.text for o in Select(driver.find_element(By.ID, "dim")).options]
    assert dims[0] == "384 (full)" and "64" in dims
    results = _search(driver, wait, "lava and ash from a volcano")
    assert len(results) == 10
    ranks = [r.find_element(By.CLASS_NAME, "rank").text for r in results]
    assert ranks == [f"{n}." for n in range(1, 11)]
    first = results[0].find_element(By.CSS_SELECTOR, "a.title")
    assert first.text == "Volcanic eruptions"
    marks = {m.text.lower() for m in results[0].find_elements(By.TAG_NAME, "mark")}
    assert {"lava", "ash", "volcano"} <= marks
    assert not results[0].find_elements(By.CSS_SELECTOR, ".concepts li")  # it has none

    first.click()
    wait.until(ec.visibility_of_element_located((By.ID, "document-view")))
    wait.until(ec.text_to_be_present_in_element((By.ID, "doc-title"), "Volcanic eruptions"))
    text = dict((i, x) for i, _, x in TOPICS)["volcano"]
    assert driver.find_element(By.ID, "doc-text").text == text
    assert not driver.find_element(By.ID, "results-view").is_displayed()

    driver.find_element(By.ID, "back").click()
    wait.until(ec.visibility_of_element_located((By.ID, "results-view")))
    title = (By.CSS_SELECTOR, "#results a.title")
    wait.until(ec.text_to_be_present_in_element(title, "Volcanic eruptions"))
    assert driver.find_element(By.ID, "q").get_attribute("value") == "lava and ash from a volcano"
    assert _console_errors(driver) == []


def test_markup_is_shown_as_text_and_highlights_follow_code_points(driver, base_url: str) -> None:
    wait = _open(driver, base_url)
    Select(driver.find_element(By.ID, "mode")).select_by_visible_text("bm25")
    Select(driver.find_element(By.ID, "k")).select_by_visible_text("5")
    results = _search(driver, wait, "angle brackets markup")
    assert results[0].find_element(By.CSS_SELECTOR, "a.title").text == TOPICS[13][1]
    assert not driver.find_elements(By.CSS_SELECTOR, "#results script, #results b, #results i")
    assert driver.execute_script("return window.__pwned === undefined")

    results = _search(driver, wait, "parabola directrix")
    assert len(results) <= 5 and "mode=bm25" in driver.current_url
    first = results[0]
    assert first.find_element(By.CSS_SELECTOR, "a.title").text == "The 𝑥² parabola"
    marks = [m.text.lower() for m in first.find_elements(By.TAG_NAME, "mark")]
    assert marks and set(marks) <= {"parabola", "directrix"}
    assert _console_errors(driver) == []


def test_errors_are_shown_and_the_key_is_sent(driver, keyed_url: str) -> None:
    wait = _open(driver, keyed_url)
    key_box = driver.find_element(By.ID, "api-key")
    assert key_box.is_displayed()
    driver.find_element(By.ID, "q").send_keys("honey bees", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.ID, "error"), "API key"))
    key_box.send_keys(KEY)
    results = _search(driver, wait, "honey bees waggle dance")
    assert results[0].find_element(By.CSS_SELECTOR, "a.title").text == "Honey bees"
    concepts = [li.text for li in results[0].find_elements(By.CSS_SELECTOR, ".concepts li")]
    assert concepts == ["honey bees"]
    assert not driver.find_element(By.ID, "error").is_displayed()


# -- the evaluation report (a file, no server) ---------------------------------------------------


@pytest.fixture(scope="module")
def report_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``eval --report``'s page for minilm against BM25 on a set where they disagree."""
    pytest.importorskip("matplotlib", reason="the report's plots need: pip install 'fieldtune[report]'")
    from fieldtune.evaluate.harness import EvalOptions, run_evaluation
    from fieldtune.evaluate.html_report import write_report
    from tests.test_report import mixed_beir

    root = tmp_path_factory.mktemp("report")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("FIELDTUNE_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))  # the session's private cache
        result = run_evaluation("minilm", mixed_beir(root / "mixed"), ["bm25"],
                                EvalOptions(dims=[384, 128, 64], n_resamples=500))
    return write_report(result, root / "report.html")


def _pixels(png: bytes):
    import io

    import matplotlib.image

    return matplotlib.image.imread(io.BytesIO(png), format="png")[..., :3]


def test_report_opens_with_its_plots_visible(driver, report_file: Path) -> None:
    from tests.test_report import MAX_BYTES

    assert report_file.stat().st_size < MAX_BYTES
    driver.get_log("browser")  # drop what earlier tests left (the key test's 401s)
    driver.set_window_size(1280, 1000)
    driver.get(report_file.as_uri())
    images = driver.find_elements(By.CSS_SELECTOR, "figure.plot img")
    assert len(images) == 2
    for image in images:
        driver.execute_script("arguments[0].scrollIntoView()", image)
        loaded = driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", image)
        box = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", image)
        assert loaded and loaded > 100 and box[0] > 100 and box[1] > 100 and image.is_displayed()
        shot = _pixels(image.screenshot_as_png)  # what is on screen where the plot is: lines, dots, text
        assert shot.std() > 0.05 and (shot < 0.5).mean() > 0.005
    page = _pixels(driver.get_screenshot_as_png())
    assert page.std() > 0.05  # not a blank page
    assert driver.find_element(By.TAG_NAME, "h1").text.startswith("Retrieval evaluation")
    assert _console_errors(driver) == []


# -- the concepts view ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def concept_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, object]]:
    """A real build's concept graph behind an index of its corpus, served; yields (URL, graph)."""
    from tests.test_concepts_api import build_concept_index

    index, graph, _ = build_concept_index(tmp_path_factory)
    with serve_in_background(create_app(index)) as url:
        yield url, graph


def test_concepts_view_found_clicked_and_followed_to_a_search(driver, concept_site) -> None:
    from fieldtune.search.concepts_view import MAX_CONCEPT_DOCUMENTS

    url, graph = concept_site
    driver.get_log("browser")  # drop what earlier tests left
    by_name = {c.name: c for c in graph.concepts}
    wait = _open(driver, url)
    nav = driver.find_element(By.ID, "nav-concepts")
    wait.until(lambda d: nav.is_displayed())

    # A hit carries the concepts of its passage; one click opens a concept.
    results = _search(driver, wait, "Kostka polynomial charge")
    chips = results[0].find_elements(By.CSS_SELECTOR, ".chunk-concepts a")
    assert "Kostka polynomial" in [c.text for c in chips]
    next(c for c in chips if c.text == "Kostka polynomial").click()
    wait.until(ec.visibility_of_element_located((By.ID, "concept-view")))
    wait.until(ec.text_to_be_present_in_element((By.ID, "concept-name"), "Kostka polynomial"))
    kostka = by_name["Kostka polynomial"]
    assert driver.find_element(By.ID, "concept-description").text == kostka.description
    documents = driver.find_elements(By.CSS_SELECTOR, "#concept-documents a")
    assert len(documents) == min(len(kostka.doc_ids), MAX_CONCEPT_DOCUMENTS) and all(d.text for d in documents)
    kinds = {e.type.value for e in graph.edges if kostka.id in (e.source, e.target)}
    sections = driver.find_elements(By.CSS_SELECTOR, "#concept-neighbours section")
    shown = {section.get_attribute("data-edge-type") for section in sections}
    assert kinds and shown == kinds

    # The concepts view: search a concept by name, open it, follow it to a search.
    nav.click()
    wait.until(ec.visibility_of_element_located((By.ID, "concepts-view")))
    box = driver.find_element(By.ID, "concept-q")
    box.send_keys("hall", Keys.ENTER)
    wait.until(ec.text_to_be_present_in_element((By.ID, "concept-status"), "in the graph"))
    found = driver.find_elements(By.CSS_SELECTOR, "#concept-list a.concept-link")
    assert found and all("hall" in f.text.lower() for f in found[:2])
    next(f for f in found if f.text == "Hall algebra").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "concept-name"), "Hall algebra"))
    assert driver.find_element(By.ID, "concept-description").text == by_name["Hall algebra"].description
    follow = driver.find_element(By.ID, "concept-search")
    assert follow.text == "Search for “Hall algebra”"
    driver.execute_script("document.getElementById('status').textContent = ''")
    follow.click()
    wait.until(ec.visibility_of_element_located((By.ID, "results-view")))
    wait.until(ec.text_to_be_present_in_element((By.ID, "status"), "result"))
    assert driver.find_element(By.ID, "q").get_attribute("value") == "Hall algebra"
    titles = [a.text for a in driver.find_elements(By.CSS_SELECTOR, "#results a.title")]
    assert titles and "Hall algebra" in titles[0]
    assert not driver.find_element(By.ID, "concept-view").is_displayed()
    assert _console_errors(driver) == []


def test_no_concepts_link_without_a_graph(driver, base_url: str) -> None:
    driver.get_log("browser")  # drop what earlier tests left
    wait = _open(driver, base_url)
    assert not driver.find_element(By.ID, "nav-concepts").is_displayed()
    results = _search(driver, wait, "honey bees waggle dance")
    assert not results[0].find_elements(By.CSS_SELECTOR, ".chunk-concepts")
    assert _console_errors(driver) == []
