"""The chat widget as a person uses it: headless Chromium against a real `lorag serve` with the support samples.

Selenium drives Debian's `chromium` through Debian's `chromium-driver`: both come from apt at the same version, so
nothing is downloaded at run time (Playwright would want its own browser build, and pins the Chromium versions it
speaks to). The fast tests at the top check how the assets are served.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.wait import WebDriverWait

from lorag.app.http.main import create_app
from lorag.core.settings import Settings
from tests.conftest import REPO, free_port
from tests.test_cli import _wait_ready, lorag_env

SUPPORT = REPO / "samples" / "kb" / "support"
DOCS = ["placing_an_order.md", "fees_explained.txt", "refund_policy.pdf", "contact_us.md", "tipping.md"]
QUESTION = "What is the minimum order value for delivery?"
COMMENT = "Clear answer, thanks"
ANSWER_TIMEOUT_S = 240  # two shared CPU cores, a 135M model and 48 new tokens: seconds, but leave room

ROOT = "const root = document.getElementById('lorag-widget').shadowRoot;"
ACTIVE = """
const active = document.activeElement;
if (!active || active.id !== 'lorag-widget') return 'page:' + (active ? active.tagName : 'none');
const inner = active.shadowRoot.activeElement;
return inner ? (inner.className || inner.tagName.toLowerCase()) : 'host';"""
# Records the reply as the page shows it after every change, to prove the text streamed in before the end.
RECORD = ROOT + """
window.__replies = [];
new MutationObserver(() => {
  const replies = root.querySelectorAll('.msg.bot');
  const reply = replies[replies.length - 1];
  if (reply) window.__replies.push({state: reply.dataset.state, text: reply.querySelector('.text').textContent});
}).observe(root.querySelector('.log'), {subtree: true, childList: true, characterData: true, attributes: true});"""
REPLY = ROOT + """
const replies = root.querySelectorAll('.msg.bot');
const reply = replies[replies.length - 1];
if (!reply) return null;
const link = (a) => ({text: a.textContent, href: a.getAttribute('href'), tabindex: a.getAttribute('tabindex'),
                      tip: a.getAttribute('aria-describedby')});
return {state: reply.dataset.state, abstained: reply.dataset.abstained, chunks: Number(reply.dataset.chunks),
        text: reply.querySelector('.text').textContent, citations: [...reply.querySelectorAll('a.citation')].map(link),
        handoff: [...reply.querySelectorAll('.handoff-link')].map(link),
        related: [...reply.querySelectorAll('a.related-link')].map(link),
        relatedTitle: (reply.querySelector('.related-title') || {}).textContent || null};"""
TIP = ROOT + """
const tip = root.getElementById(root.activeElement.getAttribute('aria-describedby'));
return {role: tip.getAttribute('role'), shown: !tip.hidden && getComputedStyle(tip).display !== 'none',
        text: tip.textContent};"""
PANEL_OPEN = ROOT + "return !root.querySelector('.panel').hidden;"


# --- fast: the assets ----------------------------------------------------------------------------------------

@pytest.fixture
def bare_client(make_settings: Callable[..., Settings]) -> Iterator[TestClient]:
    with TestClient(create_app(make_settings(server={"load_models": False}))) as client:
        yield client


def test_widget_js_is_served_as_a_cacheable_script(bare_client: TestClient) -> None:
    response = bare_client.get("/widget.js")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/javascript; charset=utf-8"
    assert "max-age=" in response.headers["cache-control"] and response.headers["etag"]
    assert response.headers["cross-origin-resource-policy"] == "cross-origin"
    assert "attachShadow" in response.text and "innerHTML" not in response.text  # text nodes only
    again = bare_client.get("/widget.js", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304 and not again.content


def test_the_demo_page_embeds_the_widget(bare_client: TestClient) -> None:
    response = bare_client.get("/")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    assert '<script src="/widget.js" data-kb="support"' in response.text
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert "/widget.js" not in bare_client.get("/openapi.json").json()["paths"]


# --- slow: the widget in Chromium ----------------------------------------------------------------------------

@dataclass
class Site:
    api: str  # the lorag server: the demo page, the widget and the API
    partner: int  # the port of another site that embeds the widget with an API key
    database: Path


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    """Debian's browser and its driver, installed as `make test` does when missing (CI runs as root)."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium", "chromium-driver"], check=True, timeout=1200)
    binary, driver = shutil.which("chromium"), shutil.which("chromedriver")
    assert binary and driver, "chromium and chromium-driver are needed: apt-get install chromium chromium-driver"
    return binary, driver


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> Iterator[Site]:
    home = tmp_path_factory.mktemp("widget")
    docs = home / "support"
    docs.mkdir()
    for name in DOCS:
        shutil.copy(SUPPORT / name, docs / name)
    env = lorag_env(home, LORAG_GENERATOR__MAX_NEW_TOKENS="48")
    lorag(["ingest", str(docs), "--kb", "support", "--audience", "public"], env, home)
    partner = free_port()
    key = lorag(["keys", "create", "--name", "partner site", "--scope", "chat:public", "--kb", "support",
                 "--origin", f"http://127.0.0.1:{partner}"], env, home).strip()
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "lorag.app", "serve", "--port", str(port)], env=env, cwd=home,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    api = f"http://127.0.0.1:{port}"
    try:
        assert _wait_ready(f"{api}/readyz", process) == 200
        with partner_site(partner, partner_page(api, key)):
            yield Site(api, partner, home / "home" / "lorag.db")
    finally:
        process.terminate()
        process.communicate(timeout=30)


def lorag(args: list[str], env: dict[str, str], cwd: Path) -> str:
    result = subprocess.run([sys.executable, "-m", "lorag.app", *args], env=env, cwd=cwd, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return result.stdout


def partner_page(api: str, key: str) -> bytes:
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>A partner shop</title></head>'
            f'<body><h1>A partner shop</h1><script src="{api}/widget.js" data-api-key="{key}" data-kb="support" '
            f'data-handoff-url="https://dashbite.example/help"></script></body></html>').encode()


class partner_site:  # noqa: N801 - used as a context manager, like a function
    """Another web origin that embeds the widget: a plain HTTP server on loopback that serves one page."""

    def __init__(self, port: int, page: bytes) -> None:
        class Page(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - the http.server API
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.end_headers()
                self.wfile.write(page)

            def log_message(self, *_args: object) -> None:  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Page)

    def __enter__(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def browser(chromium: tuple[str, str]) -> Iterator[WebDriver]:
    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=1280,900", "--lang=en-US"):
        options.add_argument(argument)  # --no-sandbox: CI runs as root, where Chromium's sandbox refuses to start
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    try:
        yield driver
    finally:
        driver.quit()


def keys(driver: WebDriver, *sequence: str) -> None:
    ActionChains(driver).send_keys(*sequence).perform()


def tab_to(driver: WebDriver, wanted: str, limit: int = 20) -> list[str]:
    """Press Tab until `wanted` (a class name) has focus; returns what had focus on the way."""
    seen = []
    for _ in range(limit):
        keys(driver, Keys.TAB)
        seen.append(driver.execute_script(ACTIVE))
        if seen[-1] == wanted:
            return seen
    raise AssertionError(f"Tab never reached {wanted}: {seen}")


def wait_for_reply(driver: WebDriver) -> dict[str, Any]:
    WebDriverWait(driver, ANSWER_TIMEOUT_S, poll_frequency=0.25).until(
        lambda d: (d.execute_script(REPLY) or {}).get("state") in ("done", "error"))
    reply = driver.execute_script(REPLY)
    assert reply["state"] == "done", f"the widget showed an error: {reply['text']}"
    return reply


def shadow(driver: WebDriver, selector: str):  # noqa: ANN201 - a Selenium WebElement
    return driver.find_element(By.ID, "lorag-widget").shadow_root.find_element(By.CSS_SELECTOR, selector)


def feedback_rows(database: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(database) as connection:
        connection.row_factory = sqlite3.Row
        return [dict(row) for row in connection.execute("SELECT * FROM feedback ORDER BY created_at")]


@pytest.mark.slow
def test_ask_by_keyboard_see_it_stream_with_sources_and_rate_it(site: Site, browser: WebDriver) -> None:
    browser.get(f"{site.api}/")
    tab_to(browser, "launcher")
    keys(browser, Keys.ENTER)
    assert browser.execute_script(PANEL_OPEN) and browser.execute_script(ACTIVE) == "input"
    browser.execute_script(RECORD)
    keys(browser, QUESTION, Keys.ENTER)
    reply = wait_for_reply(browser)
    drafts = [seen["text"] for seen in browser.execute_script("return window.__replies")
              if seen["state"] == "streaming"]
    # Streams carry verified sentences only (a one-sentence answer is one delta): the panel showed them while
    # streaming, and what it showed last is the final answer.
    assert drafts and reply["chunks"] >= 1, "the answer did not stream in"
    assert drafts[-1].strip() == reply["text"].strip(), (drafts, reply["text"])
    assert reply["text"].strip() and reply["text"] != "Searching the documentation…"
    excerpt = None
    if reply["abstained"] == "true":  # the 135M model may not manage; then a person must be offered
        assert reply["handoff"] and reply["handoff"][0]["href"].startswith("mailto:help@dashbite.example")
    else:
        excerpt = check_sources(browser, reply)
    rate(browser, "Helpful", COMMENT)
    [row] = feedback_rows(site.database)
    assert (row["kind"], row["kb"], row["audience"], row["channel"]) == ("rating", "support", "public", "widget")
    assert (row["question"], row["answer"], row["rating"], row["comment"]) == (QUESTION, reply["text"], 1, COMMENT)
    stored = json.loads(row["citations"] or "[]")
    assert [f"[{c['marker']}]" for c in stored] == [c["text"].split(" ", 1)[0] for c in reply["citations"]]
    assert excerpt is None or excerpt == stored[0]["snippet"]
    keys(browser, Keys.ESCAPE)
    assert not browser.execute_script(PANEL_OPEN) and browser.execute_script(ACTIVE) == "launcher"


def check_sources(browser: WebDriver, reply: dict[str, Any]) -> str:
    """Numbered links; a file source goes nowhere but is focusable, and focus shows its excerpt (returned)."""
    assert reply["citations"], "an answer that did not abstain must cite"
    for number, citation in enumerate(reply["citations"], start=1):
        assert citation["text"].startswith(f"[{number}] ")
        assert citation["href"] is None and citation["tabindex"] == "0"  # the samples are files, not URLs
    visited = tab_to(browser, "citation")  # Tab wraps from the input round to the top of the panel
    assert all(not name.startswith("page:") for name in visited), f"focus left the dialog: {visited}"
    tip = browser.execute_script(TIP)
    assert tip["role"] == "tooltip" and tip["shown"] and len(tip["text"]) > 20
    keys(browser, Keys.ESCAPE)  # the first Escape only dismisses the excerpt
    assert not browser.execute_script(TIP)["shown"] and browser.execute_script(PANEL_OPEN)
    return tip["text"]


def rate(browser: WebDriver, thumb: str, comment: str | None) -> None:
    button = shadow(browser, f".msg.bot:last-child .thumb[aria-label='{thumb}']")
    button.click()
    assert button.get_attribute("aria-pressed") == "true"
    if comment:
        shadow(browser, ".msg.bot:last-child .comment textarea").send_keys(comment)
    shadow(browser, ".msg.bot:last-child .send-feedback").click()
    WebDriverWait(browser, 30).until(
        lambda d: shadow(d, ".msg.bot:last-child .status").text == "Thanks for your feedback.")


@pytest.mark.slow
def test_another_site_with_its_key_gets_a_handoff_and_others_are_refused(site: Site, browser: WebDriver) -> None:
    browser.get(f"http://127.0.0.1:{site.partner}/")
    shadow(browser, ".launcher").click()
    keys(browser, "Who is the CEO of Dashbite?", Keys.ENTER)
    reply = wait_for_reply(browser)
    assert reply["abstained"] == "true" and not reply["citations"]
    # Nothing was verified, so the retrieved passages are offered as related articles, marked as such, not cited.
    assert reply["relatedTitle"] == "Related help articles:" and 1 <= len(reply["related"]) <= 3
    assert all(not link["text"].startswith("[") for link in reply["related"])
    assert reply["handoff"] == [{"text": "Talk to a person", "href": "https://dashbite.example/help",
                                 "tabindex": None, "tip": None}]
    before = len(feedback_rows(site.database))
    rate(browser, "Not helpful", None)
    assert [(row["rating"], row["comment"]) for row in feedback_rows(site.database)[before:]] == [(-1, None)]
    browser.get(f"http://localhost:{site.partner}/")  # the same page from an origin the key does not list
    shadow(browser, ".launcher").click()
    keys(browser, "How do I tip my courier?", Keys.ENTER)
    WebDriverWait(browser, 60).until(lambda d: (d.execute_script(REPLY) or {}).get("state") == "error")


@pytest.mark.slow
def test_at_phone_width_the_panel_fills_the_screen(site: Site, browser: WebDriver) -> None:
    browser.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                            {"width": 375, "height": 740, "deviceScaleFactor": 2, "mobile": True})
    browser.get(f"{site.api}/")
    shadow(browser, ".launcher").click()
    box = browser.execute_script(ROOT + """
        const panel = root.querySelector('.panel');
        await Promise.all(panel.getAnimations().map((animation) => animation.finished));  // the panel rises in
        const rect = (s) => root.querySelector(s).getBoundingClientRect().toJSON();
        return {panel: rect('.panel'), input: rect('.ask input'), send: rect('.send'), close: rect('.close'),
                width: window.innerWidth, height: window.innerHeight,
                scroll: document.documentElement.scrollWidth};""")
    assert box["width"] == 375 and box["scroll"] <= box["width"]  # no sideways scrolling
    assert (box["panel"]["left"], box["panel"]["top"]) == (0, 0)
    assert (box["panel"]["width"], box["panel"]["height"]) == (box["width"], box["height"])
    for part in ("input", "send", "close"):
        assert box[part]["left"] >= 0 and box[part]["right"] <= box["width"], part
        assert box[part]["top"] >= 0 and box[part]["bottom"] <= box["height"], part
    assert box["close"]["width"] >= 44 and box["close"]["height"] >= 44  # a thumb-sized target
