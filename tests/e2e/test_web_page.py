"""The investigator page in headless Chromium (Debian's chromium and chromedriver, driven by
Selenium) against `attestream serve` run by the CLI on a ledger written by the real
sequencer: sign in with a token, search with paging, open a decision, wait for the badge the
browser computes from the inclusion proof, download the case bundle and verify it with the
log's public key alone. ATTESTREAM_SCREENSHOTS=1 saves docs/investigator-page.png."""

from __future__ import annotations

import json
import os
import shutil
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from detect_helpers import background, child_env
from ledger_helpers import publish_decisions, run_sequencer
from search_ledger import payment
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ready
from selenium.webdriver.support.ui import WebDriverWait
from test_demo import cli

from attestcore.ports import unused_port
from attestcore.waiting import wait_until
from attestream.access_tokens import AccessTokens, Role, tokens_path
from attestream.settings import Settings
from attestream.wiring import open_store
from ledger.access_entry import ACCESS_CHAIN, decode_access_entry
from streams.topics import ensure_topics

CUSTOMER = "cu-7"
PAYMENTS = 12  # every third for CUSTOMER: 4 decisions, pages of 3
PAGE = 3
SERVE_TIMEOUT_S = 60.0
"""The server opens the store and the access chain in a second or two; a minute is stuck."""
PAGE_TIMEOUT_S = 30.0
"""Each page action is a few API calls on a small ledger; 30 s means it hangs."""
SCREENSHOT = Path(__file__).resolve().parents[2] / "docs" / "investigator-page.png"
SAVE_SCREENSHOT = os.environ.get("ATTESTREAM_SCREENSHOTS") == "1"
"""Read at import: the settings fixtures clear the ATTESTREAM_ variables before the test."""

pytestmark = pytest.mark.skipif(shutil.which("chromedriver") is None,
                                reason="chromedriver missing: run `make setup`")  # fmt: skip


def page_is_served(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                 "--window-size=1400,1300"):  # fmt: skip
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(tmp_path / "downloads"),
        "download.prompt_for_download": False,
    })  # fmt: skip
    driver = webdriver.Chrome(options=options, service=Service(shutil.which("chromedriver")))
    try:
        yield driver
    finally:
        driver.quit()


def test_search_open_verify_and_download_a_case_bundle(
    isolated: Settings, browser: WebDriver, tmp_path: Path
) -> None:
    # A ledger of payments, four of them by CUSTOMER, logged by the real sequencer.
    paid = [payment(i, CUSTOMER if i % 3 == 0 else f"cu-other-{i}", "T1", (i % 10) / 10)
            for i in range(PAYMENTS)]  # fmt: skip
    mine = [d for d, _ in paid if d.entity_id == CUSTOMER]
    ensure_topics(isolated.require_kafka(), [isolated.topic_decisions], partitions=1)
    store = open_store(isolated, create=True)
    publish_decisions(isolated, [d for d, _ in paid])
    run_sequencer(isolated, store, batch_max=5, records=len(paid))
    token = AccessTokens(tokens_path(isolated.home)).grant("ines", Role.INVESTIGATOR)
    key = json.loads(cli("ledger", "keys", "--json").stdout)["verifier_key"]

    port = unused_port()
    base = f"http://127.0.0.1:{port}/"
    with background(["serve", "--port", str(port)], child_env(), tmp_path / "serve.log"):
        wait_until(lambda: page_is_served(base), SERVE_TIMEOUT_S, what="the investigator page",
                   detail=lambda: (tmp_path / "serve.log").read_text()[-2000:])  # fmt: skip
        wait = WebDriverWait(browser, PAGE_TIMEOUT_S)
        browser.get(base)
        browser.find_element(By.ID, "token").send_keys(token + "\n")

        # Search by customer: pages of PAGE, the second page by the cursor.
        browser.find_element(By.NAME, "customer").send_keys(CUSTOMER)
        limit = browser.find_element(By.NAME, "limit")
        limit.clear()
        limit.send_keys(str(PAGE))
        browser.find_element(By.ID, "search-button").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "search-status"), "page 1"))
        first = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")]
        assert [row.split()[2] for row in first] == [d.event_id for d in mine[:PAGE]]
        browser.find_element(By.ID, "next-page").click()
        wait.until(ready.text_to_be_present_in_element((By.ID, "search-status"), "page 2"))
        second = browser.find_elements(By.CSS_SELECTOR, "#results tbody tr")
        assert [row.text.split()[2] for row in second] == [d.event_id for d in mine[PAGE:]]
        assert not browser.find_element(By.ID, "next-page").is_displayed()

        # The decision: outcome, reasons as bars, the customer's timeline, the badge.
        target = mine[PAGE]
        chain, seq = second[0].text.split()[1].split("/")
        second[0].find_element(By.CLASS_NAME, "open-decision").click()
        badge = browser.find_element(By.ID, "badge")
        wait.until(lambda _: badge.get_attribute("class") != "badge")  # checked, either way
        assert badge.text == "verified", browser.find_element(By.ID, "badge-detail").text
        detail = browser.find_element(By.ID, "badge-detail").text
        assert detail.startswith(f"leaf {seq} of chain {chain} is included in the checkpoint "
                                 f'"{isolated.log_origin}/{chain}" of size {PAYMENTS}')  # fmt: skip
        outcome = browser.find_element(By.ID, "outcome").text
        assert target.outcome in outcome and str(target.score) in outcome
        bars = browser.find_elements(By.CSS_SELECTOR, "#reasons .reason")
        assert [b.text.split()[0] for b in bars] == [r.feature for r in target.reasons]
        timeline = browser.find_elements(By.CSS_SELECTOR, "#timeline tbody tr")
        assert [r.text.split()[1] for r in timeline] == [d.event_id for d in mine]
        if SAVE_SCREENSHOT:
            browser.save_screenshot(str(SCREENSHOT))

        # The case bundle, downloaded by the browser, verified with the public key alone.
        browser.execute_cdp_cmd("Page.setDownloadBehavior", {
            "behavior": "allow", "downloadPath": str(tmp_path / "downloads")})  # fmt: skip
        browser.find_element(By.ID, "download").click()
        downloaded = tmp_path / "downloads" / f"case-{target.decision_id[:16]}.json"
        wait_until(downloaded.exists, PAGE_TIMEOUT_S, what="the downloaded case bundle")
    offline = {"PATH": "/usr/bin:/bin", "ATTESTREAM_HOME": str(tmp_path / "none")}
    verified = cli(
        "forensic", "verify-bundle", str(downloaded), "--key", key, "--json", env=offline
    )
    assert verified.returncode == 0, verified.stdout + verified.stderr
    report = json.loads(verified.stdout)
    assert report["ok"] and report["entries"] == 1
    assert json.loads(downloaded.read_text())["manifest"]["exported_by"] == "ines"

    # Every call the page made went through the API and is in the access chain.
    rows = store.entry_rows(ACCESS_CHAIN)
    records = [decode_access_entry(bytes(row[4])).access for row in rows]
    store.close()
    assert [r.operation for r in records if r.operation in ("search", "bundle")] == [
        "search", "search", "bundle"]  # fmt: skip
    assert {r.operation for r in records} == {"search", "decision", "prove", "timeline", "bundle"}
    assert {(r.principal, r.status) for r in records} == {("ines", 200)}
