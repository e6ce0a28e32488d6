"""The HTML report in Debian's headless Chromium (Selenium): loads cleanly, filters, plays, stays inert.

Skipped only when chromium/chromedriver (or selenium) are missing and MTAVG_REQUIRE_BROWSER is unset;
CI sets it, so there a missing browser fails the suite instead of hiding the test.
"""

from __future__ import annotations

import functools
import json
import os
import random
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from conftest import random_items, write_bench, write_tiny_clip
from mtavg.bench.schema import QAItem
from mtavg.report.figures import sub_dimension_bars
from mtavg.report.site import build_site
from test_report_site import PAYLOAD, gold_raw, make_run, site_data

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
try:
    import selenium  # noqa: F401
    HAVE_SELENIUM = True
except ImportError:
    HAVE_SELENIUM = False

if not (CHROMIUM and CHROMEDRIVER and HAVE_SELENIUM):
    missing = ", ".join(n for n, ok in (("chromium", CHROMIUM), ("chromedriver", CHROMEDRIVER),
                                         ("selenium", HAVE_SELENIUM)) if not ok)
    if os.environ.get("MTAVG_REQUIRE_BROWSER"):
        pytest.fail(f"MTAVG_REQUIRE_BROWSER is set but {missing} is missing "
                    "(apt-get install chromium chromium-driver; pip install selenium)", pytrace=False)
    pytest.skip(f"browser test needs {missing}", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import Select, WebDriverWait  # noqa: E402

INJECTED = '<script>window.__pwned=1</script><img src=x onerror="window.__pwned=1">'
INJECTED_QID = "q00003"
JUDGED_QID = "q00005"


def _random_raw(item: QAItem) -> str:
    rng = random.Random(item.qid)
    if item.qid == INJECTED_QID:
        return INJECTED + PAYLOAD + " Answer: A"
    if rng.random() < 0.15:
        return "I cannot tell."  # invalid
    return json.dumps({"answer": [rng.choice(list(item.options))], "time": ["A"], "rationale": "guess"})


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """40 items on 6 real H.264+AAC clips (2 s), a perfect run and a random one with markup in it."""
    root = tmp_path_factory.mktemp("browser")
    clip = write_tiny_clip(root / "clip.mp4", seconds=2.0)
    bench = root / "bench"
    (bench / "media").mkdir(parents=True)
    videos = []
    for i in range(6):
        os.link(clip, bench / "media" / f"v{i:02d}.mp4")
        videos.append({"video_id": f"v{i:02d}", "path": f"media/v{i:02d}.mp4", "generator": f"gen{i % 2}"})
    write_bench(bench, videos, random_items(random.Random(3), [v["video_id"] for v in videos], 40))
    runs = [make_run(bench, root / "runs" / "oracle", "oracle", gold_raw),
            make_run(bench, root / "runs" / "guess", "guess", _random_raw)]
    # judge.jsonl as `mtavg judge` writes it: one judged answer of "guess", one judge note carrying markup
    judged = [{"qid": f"{JUDGED_QID}|judge:a", "item": JUDGED_QID, "judge": "judge:a", "score": 4, "error": None},
              {"qid": f"{JUDGED_QID}|judge:b", "item": JUDGED_QID, "judge": "judge:b", "score": None,
               "error": "unparseable judge reply " + INJECTED}]
    (runs[1] / "judge.jsonl").write_text("".join(json.dumps(r) + "\n" for r in judged), encoding="utf-8")
    figures = sub_dimension_bars([json.loads((r / "results.json").read_text()) for r in runs], root / "figures")
    return build_site(runs, root / "site", title="browser test", figures=figures).parent


@pytest.fixture(scope="module")
def server(site):
    """The site over HTTP on 127.0.0.1 (random port), stopped after the module."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/index.html"
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
        pass


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required", "--window-size=1280,1600"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=webdriver.ChromeService(executable_path=CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def open_page(driver, url: str) -> None:
    driver.get(url)
    WebDriverWait(driver, 30).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    driver.get_log("browser")  # start each test with an empty log


def severe(driver) -> list[dict]:
    return [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def visible_count(driver) -> int:
    return int(driver.find_element(By.ID, "match-count").get_attribute("data-count"))


def choose(driver, facet: str, value: str) -> None:
    Select(driver.find_element(By.ID, f"filter-{facet}")).select_by_value(value)


def test_page_loads_without_console_errors(browser, site, server):
    browser.get(server)
    WebDriverWait(browser, 30).until(lambda d: d.execute_script("return document.body.dataset.ready") == "1")
    assert severe(browser) == []
    assert visible_count(browser) == len(site_data(site / "index.html")["items"]) == 40
    assert len(browser.find_elements(By.CSS_SELECTOR, "article.item")) == 20  # first page only
    assert browser.find_elements(By.CSS_SELECTOR, "table.mtavg-table#table3")
    images = browser.find_elements(By.CSS_SELECTOR, ".figures img")
    assert images and all(browser.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img)
                          for img in images)


def test_filters_show_the_expected_items(browser, site, server):
    open_page(browser, server)
    data = site_data(site / "index.html")
    guess = str(data["evaluators"].index("guess"))
    for status in ("correct", "incorrect", "invalid"):
        choose(browser, "evaluator", guess)
        choose(browser, "status", status)
        expected = [it["qid"] for it in data["items"] if it["answers"][guess]["status"] == status]
        assert expected, f"fixture has no {status} answers"
        assert visible_count(browser) == len(expected)
        cards = browser.find_elements(By.CSS_SELECTOR, "article.item")
        assert [c.get_attribute("data-qid") for c in cards] == expected[:20]
        rows = browser.find_elements(By.CSS_SELECTOR, "article.item tr.answer")
        assert {r.get_attribute("data-evaluator") for r in rows} == {guess}
        assert {r.get_attribute("class") for r in rows} == {f"answer status-{status}"}
    choose(browser, "status", "")
    choose(browser, "format", "pairwise")
    pairwise = [it for it in data["items"] if it["format"] == "pairwise"]
    assert visible_count(browser) == len(pairwise) > 0
    captions = [c.text for c in browser.find_elements(By.CSS_SELECTOR, "article.item figcaption")]
    assert captions[:2] == [f"Clip 1 — {pairwise[0]['clips'][0]['id']}", f"Clip 2 — {pairwise[0]['clips'][1]['id']}"]
    browser.find_element(By.ID, "filter-reset").click()
    assert visible_count(browser) == 40


def test_pages_and_search(browser, server):
    open_page(browser, server)
    browser.find_element(By.ID, "page-next").click()
    assert [c.get_attribute("data-qid") for c in browser.find_elements(By.CSS_SELECTOR, "article.item")][0] == "q00020"
    assert browser.find_element(By.ID, "page-info").text == "page 2 of 2"
    browser.find_element(By.ID, "filter-text").send_keys("q00017")
    WebDriverWait(browser, 10).until(lambda d: visible_count(d) == 1)
    assert browser.find_element(By.CSS_SELECTOR, "article.item").get_attribute("data-qid") == "q00017"


def test_a_clip_plays_with_audio(browser, server):
    open_page(browser, server)
    assert browser.execute_script(
        "return document.createElement('video').canPlayType('video/mp4; codecs=\"avc1.64001e, mp4a.40.2\"')"
    ) == "probably", "this Chromium cannot play H.264/AAC"
    video = browser.find_element(By.CSS_SELECTOR, "article.item video")
    assert video.get_attribute("preload") == "none"
    outcome = browser.execute_async_script(
        "var done = arguments[arguments.length - 1]; var v = arguments[0];"
        "v.play().then(function () { done('playing'); }, function (e) { done('error: ' + e); });", video)
    assert outcome == "playing"
    WebDriverWait(browser, 15).until(lambda d: d.execute_script("return arguments[0].currentTime", video) > 0.3)
    state = browser.execute_script(
        "var v = arguments[0]; return {paused: v.paused, error: v.error && v.error.code,"
        " audio: v.webkitAudioDecodedByteCount, video: v.webkitVideoDecodedByteCount}", video)
    assert state["paused"] is False and state["error"] is None
    assert state["video"] > 0 and state["audio"] > 0, state
    assert severe(browser) == []


def test_injected_markup_is_shown_as_text_and_never_runs(browser, site, server):
    open_page(browser, server)
    browser.find_element(By.ID, "filter-text").send_keys(INJECTED_QID)
    WebDriverWait(browser, 10).until(lambda d: visible_count(d) == 1)
    raw_texts = [e.get_attribute("textContent") for e in browser.find_elements(By.CSS_SELECTOR, "article.item pre.raw")]
    assert INJECTED + PAYLOAD + " Answer: A" in raw_texts  # visible, character for character
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert browser.execute_script("return document.querySelectorAll('img[src=\"x\"], #items script').length") == 0
    assert len(browser.find_elements(By.TAG_NAME, "script")) == 2  # the data block and the browser script
    assert severe(browser) == []


def test_judge_scores_show_beside_the_rationale(browser, server):
    open_page(browser, server)
    browser.find_element(By.ID, "filter-text").send_keys(JUDGED_QID)
    WebDriverWait(browser, 10).until(lambda d: visible_count(d) == 1)
    notes = [e.get_attribute("textContent") for e in browser.find_elements(By.CSS_SELECTOR, "tr.answer p.judges")]
    assert notes == [f"Judged: judge:a 4/5 · judge:b – (unparseable judge reply {INJECTED})"]  # guess only
    assert browser.execute_script("return typeof window.__pwned") == "undefined"
    assert severe(browser) == []


def test_the_folder_works_from_a_file_url(browser, site):
    open_page(browser, (site / "index.html").as_uri())
    assert visible_count(browser) == 40
    video = browser.find_element(By.CSS_SELECTOR, "article.item video")
    browser.execute_script("arguments[0].muted = true; arguments[0].play();", video)
    WebDriverWait(browser, 15).until(lambda d: d.execute_script("return arguments[0].currentTime", video) > 0.3)
    widths = [browser.execute_script("return arguments[0].naturalWidth", img)
              for img in browser.find_elements(By.CSS_SELECTOR, ".figures img")]
    assert all(w > 0 for w in widths)
    assert severe(browser) == []
