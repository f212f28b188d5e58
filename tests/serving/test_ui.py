"""The browser UI in a real headless Chromium, on a real ``vidrec serve --workers 2`` over a tiny model.

Each test drives the page as a person would (open a user, click feedback, upload, remove) and
checks what the page shows against what the service answers and what its event log stored.
Tests touch different users and videos, so they share one service and one browser.
"""

from __future__ import annotations

import httpx
import pytest

from tests.chromium import chromium_or_skip
from tests.live_service import LiveService
from tests.tiny_platform import small_config, two_audiences
from vidrec.features.store import EventLog
from vidrec.recommender import Recommender
from vidrec.serving.auth import create_key

WAIT_S = 60


@pytest.fixture(scope="module")
def browser():
    driver = chromium_or_skip()  # first: a machine without a browser skips before training anything
    driver.set_script_timeout(WAIT_S)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def service(browser, tmp_path_factory):
    root = tmp_path_factory.mktemp("ui")
    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(root / "model")
    secret = create_key(root / "keys.json", "ui", ["events:write", "catalogue:write"])
    live = LiveService(root / "model", root / "run", workers=2, keys=root / "keys.json")
    yield live, secret
    live.stop()


def wait(driver, condition, what: str):
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, WAIT_S).until(lambda d: condition(d))
    except TimeoutException:
        message = driver.find_element("id", "message").text
        pytest.fail(f"timed out waiting for {what}; the page says {message!r}")


def idle(driver) -> bool:
    return driver.execute_script("return document.body.dataset.busy") == "0"


def renders(driver, table: str) -> int:
    return int(driver.find_element("id", table).get_attribute("data-renders") or 0)


def open_user(driver, base: str, user: str) -> None:
    driver.get(f"{base}/#user={user}")
    wait(driver, lambda d: d.find_element("id", "slate").get_attribute("data-user") == user and idle(d),
         f"the slate of {user}")  # fmt: skip


def slate_ids(driver) -> list[str]:
    return [r.get_attribute("data-video-id") for r in driver.find_elements("css selector", "#slate tbody tr")]


def use_key(driver, secret: str) -> None:
    driver.find_element("id", "api-key").send_keys(secret)
    driver.find_element("css selector", "#key-form button[type=submit]").click()
    wait(driver, lambda d: "key is set" in d.find_element("id", "key-state").text, "the key to be taken")


def click_in_row(driver, table: str, video_id: str, button: str, confirm: bool = False) -> None:
    """Click ``button`` (a class) in ``video_id``'s row (``confirm``: and accept the question it asks),
    then wait for the table to render again."""
    before = renders(driver, table)
    driver.find_element("css selector", f'#{table} tr[data-video-id="{video_id}"] button.{button}').click()
    if confirm:
        driver.switch_to.alert.accept()
    wait(driver, lambda d: renders(d, table) > before and idle(d), f"{table} after {button} of {video_id}")


def test_the_page_shows_a_users_slate_with_every_stage(browser, service) -> None:
    live, _ = service
    browser.get_log("browser")  # drained: what follows is this page's
    open_user(browser, live.base, "u1")
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []  # no script or CSP error
    api = httpx.get(f"{live.base}/users/u1/recommendations", params={"k": 10, "debug": True}, timeout=30).json()
    assert slate_ids(browser) == [i["video_id"] for i in api["items"]]
    first = api["items"][0]
    row = browser.find_element("css selector", f'#slate tr[data-video-id="{first["video_id"]}"]')
    sources = [c.text for c in row.find_elements("css selector", ".chip.source")]
    assert sources == first["sources"] and sources
    cells = [c.text for c in row.find_elements("tag name", "td")]
    assert f"{first['p_complete']:.3f}" in cells[4] and cells[5] == f"{first['score']:.3f}"
    assert browser.find_element("id", "removed-count").text == str(len(api["removed"]))
    history = httpx.get(f"{live.base}/users/u1/history", timeout=30).json()
    shown = [r.get_attribute("data-video-id") for r in browser.find_elements("css selector", "#history tbody tr")]
    assert shown == [h["video_id"] for h in history["items"]] and len(shown) == history["total"] == 14


def test_a_dislike_removes_the_video_from_the_next_slate(browser, service) -> None:
    live, secret = service
    open_user(browser, live.base, "u3")
    use_key(browser, secret)
    top = slate_ids(browser)[0]
    click_in_row(browser, "slate", top, "dislike")
    assert top not in slate_ids(browser) and len(slate_ids(browser)) == 10
    assert "Posted dislike of " + top in browser.find_element("id", "message").text
    row = browser.find_element("css selector", f'#history tr[data-video-id="{top}"]')
    assert "disliked" in row.text
    api = httpx.get(f"{live.base}/users/u3/recommendations", params={"k": 10}, timeout=30).json()
    assert top not in [i["video_id"] for i in api["items"]]


def test_a_like_and_a_watch_are_stored_by_the_service(browser, service) -> None:
    live, secret = service
    open_user(browser, live.base, "u5")
    use_key(browser, secret)
    liked = slate_ids(browser)[0]
    click_in_row(browser, "slate", liked, "like")
    watched = slate_ids(browser)[0]
    assert watched != liked
    click_in_row(browser, "slate", watched, "watch")
    log = EventLog(live.events_db)
    try:
        stored = log.all_events().filter(user_id="u5")
    finally:
        log.close()
    got = {(r["video_id"], r["event"], r["watch_seconds"]) for r in stored.iter_rows(named=True)}
    assert got == {(liked, "like", None), (watched, "watch", 100.0)}
    history = {h["video_id"]: h for h in httpx.get(f"{live.base}/users/u5/history", timeout=30).json()["items"]}
    assert history[liked]["liked_at"] and history[watched]["completed_at"]


def test_writes_without_a_key_show_the_services_answer(browser, service) -> None:
    live, _ = service
    open_user(browser, live.base, "u7")
    browser.execute_script("sessionStorage.clear()")
    top = slate_ids(browser)[0]
    browser.find_element("css selector", f'#slate tr[data-video-id="{top}"] button.dislike').click()
    wait(browser, lambda d: "needs an API key" in d.find_element("id", "message").text, "the 401 message")
    assert top in slate_ids(browser)


def test_the_catalogue_is_browsed_page_by_page(browser, service) -> None:
    live, _ = service
    browser.get(f"{live.base}/#catalogue")
    wait(browser, lambda d: renders(d, "videos") >= 1 and idle(d), "the catalogue")
    rows = [r.get_attribute("data-video-id") for r in browser.find_elements("css selector", "#videos tbody tr")]
    api = httpx.get(f"{live.base}/videos", params={"limit": 25}, timeout=30).json()
    assert rows == [v["video_id"] for v in api["items"]] and len(rows) == 25
    before = renders(browser, "videos")
    browser.find_element("id", "videos-next").click()
    wait(browser, lambda d: renders(d, "videos") > before and idle(d), "the second page")
    rows = [r.get_attribute("data-video-id") for r in browser.find_elements("css selector", "#videos tbody tr")]
    api = httpx.get(f"{live.base}/videos", params={"offset": 25, "limit": 25}, timeout=30).json()
    assert rows == [v["video_id"] for v in api["items"]] and rows
    assert "26\u2013" in browser.find_element("id", "videos-page").text


def test_an_upload_is_listed_and_then_removed(browser, service) -> None:
    live, secret = service
    browser.get(f"{live.base}/#catalogue")
    wait(browser, lambda d: renders(d, "videos") >= 1 and idle(d), "the catalogue")
    use_key(browser, secret)
    browser.find_element("css selector", "#upload-panel summary").click()
    title = '<img src=x onerror="window.pwned=1"> & more'
    fields = {"video_id": "ui-upload", "creator_id": "c-ui", "category": "music", "tags": "even, new",
              "duration_seconds": "42", "title": title}  # fmt: skip
    for name, value in fields.items():
        browser.find_element("css selector", f'#upload-form [name="{name}"]').send_keys(value)
    before = renders(browser, "videos")
    browser.find_element("css selector", "#upload-form button[type=submit]").click()
    wait(browser, lambda d: renders(d, "videos") > before and idle(d), "the catalogue after the upload")
    row = browser.find_element("css selector", "#videos tbody tr")
    assert row.get_attribute("data-video-id") == "ui-upload"
    assert row.find_element("css selector", ".title").text == title  # shown as text, never parsed
    assert not browser.find_elements("css selector", "#videos img") and not browser.execute_script(
        "return window.pwned")  # fmt: skip
    assert [c.text for c in row.find_elements("css selector", ".chip")][:2] == ["even", "new"]
    before = renders(browser, "videos")
    browser.find_element("css selector", '#videos tr[data-video-id="ui-upload"] button.remove').click()
    browser.switch_to.alert.dismiss()  # asked first; nothing removed
    assert renders(browser, "videos") == before and idle(browser)
    click_in_row(browser, "videos", "ui-upload", "remove", confirm=True)
    row = browser.find_element("css selector", '#videos tr[data-video-id="ui-upload"]')
    assert "removed" in row.text and not row.find_element("css selector", "button.remove").is_enabled()
    api = httpx.get(f"{live.base}/videos", params={"id": "ui-upload"}, timeout=30).json()
    assert api["items"][0]["available"] is False and api["items"][0]["title"] == title
