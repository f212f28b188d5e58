"""The README's picture of the browser UI (docs/figures/ui.png): `vidrec serve` on a model, one user's page
in the same headless Chromium the UI tests use.

    .venv/bin/python benchmarks/ui_screenshot.py                                  # runs/bench-default/model
    .venv/bin/python benchmarks/ui_screenshot.py --model models/ml100k --user 42 --out /tmp/ui.png

Without ``--model``: the default platform's model that benchmarks/serving_latency.py builds, when it
is there, else a tiny model trained here. The service keeps its event log and store in a temporary
folder (the model directory is only read) and takes no writes. Without ``--user``: the first user of
the users table with at least 12 videos in their history.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository root, for the tests' helpers

from tests.chromium import headless_chromium  # noqa: E402
from tests.live_service import LiveService  # noqa: E402

DEFAULT_MODEL = Path("runs/bench-default/model")
WIDTH, HEIGHT = 1440, 1320


def tiny_model(where: Path) -> Path:
    from tests.tiny_platform import small_config, two_audiences
    from vidrec.recommender import Recommender

    Recommender.train(two_audiences(), small_config(), log=lambda m: None).save(where)
    return where


def pick_user(base: str) -> str:
    """The first user of the table whose history holds at least 12 videos (a page worth showing)."""
    users = httpx.get(f"{base}/users", params={"limit": 200}, timeout=60).json()["items"]
    for u in users:
        if httpx.get(f"{base}/users/{u['user_id']}/history", params={"limit": 1}, timeout=60).json()["total"] >= 12:
            return u["user_id"]
    return users[0]["user_id"]


def screenshot(base: str, user: str, out: Path) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    driver = headless_chromium(WIDTH, HEIGHT)
    try:
        driver.get(f"{base}/#user={user}")
        WebDriverWait(driver, 120).until(lambda d: d.find_element("id", "slate").get_attribute("data-user") == user
                                         and d.execute_script("return document.body.dataset.busy") == "0")
        driver.find_element("css selector", "#removed-panel summary").click()
        time.sleep(0.5)  # the panel's rows laid out
        out.parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(out))
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, help="a model directory (default: runs/bench-default/model, else tiny)")
    parser.add_argument("--user", help="the user to show (default: the first with 12 videos in their history)")
    parser.add_argument("--out", type=Path, default=Path("docs/figures/ui.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or (DEFAULT_MODEL if (DEFAULT_MODEL / "LATEST").exists() else tiny_model(Path(tmp) / "m"))
        t = time.perf_counter()
        live = LiveService(model, Path(tmp) / "run", timeout_s=600)
        try:
            print(f"serving {model} on {live.base} (ready in {time.perf_counter() - t:.0f} s)")
            user = args.user or pick_user(live.base)
            screenshot(live.base, user, args.out)
            print(f"wrote {args.out}: user {user}")
        finally:
            live.stop()


if __name__ == "__main__":
    main()
