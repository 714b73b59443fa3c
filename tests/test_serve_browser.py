"""`sensekit serve` in a real browser: Debian's headless Chromium driven by Selenium through the system
chromedriver (nothing is downloaded). Skips, naming what is missing, where Chromium, chromedriver or
selenium is absent; `make test` installs them as root with apt-get (the `browser` target), so CI runs it.

The screenshot of the word page goes to the test's tmp folder; SENSEKIT_SCREENSHOT=PATH copies it there too
(docs/img/serve.png was taken that way).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from serve_store import PAYLOADS, XSS_TOKEN_TEXT, free_port, start_server, write_serve_store

CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
DRIVER = shutil.which("chromedriver") or next(
    (p for p in ("/usr/lib/chromium/chromedriver",) if Path(p).exists()), None
)


def _missing() -> list[str]:
    out = []
    if CHROMIUM is None:
        out.append("the chromium browser (apt-get install chromium)")
    if DRIVER is None:
        out.append("chromedriver (apt-get install chromium-driver)")
    try:
        import selenium  # noqa: F401
    except ImportError:
        out.append("selenium (pip install -e '.[test]')")
    try:
        import starlette  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        out.append("starlette/uvicorn (pip install -e '.[serve]')")
    return out


# CI (CI=true, root: `make test` installed the browser) must run this test: there a missing piece fails it.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        bool(_missing()) and not os.environ.get("CI"), reason="browser test needs " + "; ".join(_missing())
    ),
]

WAIT_S = 30


@pytest.fixture(scope="module")
def browser():
    if _missing():
        pytest.fail("CI must run the browser test, but it needs " + "; ".join(_missing()) + " (make browser)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in (
        "--headless=new",
        "--no-sandbox",  # root in CI
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        "--no-first-run",
        "--disable-extensions",
        "--disable-background-networking",
    ):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=opts)
    driver.set_page_load_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def server(tmp_path_factory, tokenizer_json, tok):
    store = write_serve_store(tmp_path_factory.mktemp("browser") / "b.sensekit", tokenizer_json, tok)
    port = free_port()
    proc = start_server(store, port)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)


def _wait(driver, cond):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S).until(cond)


def test_type_a_word_see_its_senses_click_a_synonym(browser, server, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    d = browser
    d.get(server + "/")
    box = d.find_element(By.ID, "q")
    box.send_keys("ban")
    # type-ahead: the suggestion list fills from /api/search
    hint = _wait(d, lambda d: [a for a in d.find_elements(By.CSS_SELECTOR, "#suggest a") if a.text == "bank"])
    assert hint[0].get_attribute("href").endswith("/?w=bank")
    box.send_keys("k", Keys.ENTER)
    _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "article.sense"))
    assert d.find_element(By.ID, "word").text == "bank"
    assert len(d.find_elements(By.CSS_SELECTOR, "article.sense")) == 3
    assert d.find_element(By.CSS_SELECTOR, "#sense-0 mark").text == "bank"
    # the scatter: one disc per sense, one dot per kept context vector; hovering shows a snippet
    discs = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#scatter circle.sense"))
    assert len(discs) == 3 and len(d.find_elements(By.CSS_SELECTOR, "#scatter circle.ctx")) == 9
    from selenium.webdriver.common.action_chains import ActionChains

    near = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#neighbor-list a.word"))
    assert len(near) == 10 and near[0].get_attribute("href").startswith(server + "/?w=")
    ActionChains(d).move_to_element(d.find_elements(By.CSS_SELECTOR, "#scatter circle.ctx")[0]).perform()
    _wait(d, lambda d: "bank" in d.find_element(By.ID, "tip").text)
    shot = tmp_path / "serve-bank.png"
    assert d.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    if os.environ.get("SENSEKIT_SCREENSHOT"):
        shutil.copyfile(shot, os.environ["SENSEKIT_SCREENSHOT"])

    # a synonym attached to sense 0 is a link to that word's page
    d.find_element(By.CSS_SELECTOR, '#sense-0 a.word.syn[href="/?w=river"]').click()
    _wait(d, lambda d: d.find_element(By.ID, "word").text == "river")
    cards = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "article.sense"))
    assert len(cards) == 2 and "/?w=river" in d.current_url  # the URL holds the word: shareable
    _wait(d, lambda d: len(d.find_elements(By.CSS_SELECTOR, "#scatter circle.sense")) == 2)
    assert d.save_screenshot(str(tmp_path / "serve-river.png"))
    # and back
    d.back()
    _wait(d, lambda d: d.find_element(By.ID, "word").text == "bank")


def test_hostile_store_text_runs_no_script(browser, tmp_path_factory, tokenizer_json, tok):
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.common.by import By

    store = write_serve_store(tmp_path_factory.mktemp("hostile") / "h.sensekit", tokenizer_json, tok, payloads=True)
    port = free_port()
    proc = start_server(store, port)
    try:
        d = browser
        for url in ("/?w=bank", "/info", "/?" + __import__("urllib.parse").parse.urlencode({"w": PAYLOADS[0]})):
            d.get(f"http://127.0.0.1:{port}{url}")
            _wait(d, lambda d: d.execute_script("return document.readyState") == "complete")
            if url == "/?w=bank":
                _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#scatter circle.sense"))
                assert PAYLOADS[0] in d.find_element(By.ID, "senses").text  # shown as text
                near = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#neighbor-list a.word"))
                assert near[0].text == XSS_TOKEN_TEXT.strip()  # a token text, written as text
            with pytest.raises(NoAlertPresentException):
                d.switch_to.alert.text  # noqa: B018 (no alert() ran)
            assert d.execute_script("return document.scripts.length") == 1
            assert d.execute_script("return document.images.length") == 0
            assert d.execute_script("return document.querySelectorAll('iframe, [onload], [onerror]').length") == 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)


@pytest.fixture(scope="module")
def annotate_server(tmp_path_factory, teacher_dir):
    """A store with a lexical view, built by the tiny teacher, served with --annotate (the teacher loaded)."""
    from helpers import TEXTS, build_config

    from sensekit.builder.pipeline import build
    from sensekit.model.teacher import load_teacher

    tmp = tmp_path_factory.mktemp("annotate-browser")
    corpus = tmp / "corpus.txt"
    corpus.write_text("\n\n".join(TEXTS * 3) + "\n", encoding="utf-8")
    cfg = build_config(corpus, tmp / "a.sensekit", lexical_layer="auto", min_sense_size=2, key="input", link_budget=0)
    build(cfg, teacher=load_teacher(str(teacher_dir), device="cpu"))
    port = free_port()
    proc = start_server(tmp / "a.sensekit", port, "--annotate", wait_s=240)  # it loads torch and the teacher
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=20)


def test_the_annotate_box_names_each_words_sense(browser, annotate_server):
    from selenium.webdriver.common.by import By

    d = browser
    d.get(annotate_server + "/")
    box = d.find_element(By.ID, "annotate-text")
    box.send_keys("the river bank was green")
    d.find_element(By.CSS_SELECTOR, "#annotate button[type=submit]").click()
    rows = _wait(d, lambda d: d.find_elements(By.CSS_SELECTOR, "#annotate-out table.annotate tr"))
    words = [r.find_element(By.CSS_SELECTOR, "td a").text for r in rows]
    assert "bank" in words and "river" in words
    bank = rows[words.index("bank")].find_elements(By.TAG_NAME, "td")
    assert bank[1].text.startswith("(induced sense ")  # no WordNet linking in this store: an induced sense
    assert 0 < float(bank[2].text) <= 1  # its probability among bank's senses
    rows[words.index("bank")].find_element(By.CSS_SELECTOR, "td a").click()  # each word links to its page
    _wait(d, lambda d: d.find_element(By.ID, "word").text == "bank")
