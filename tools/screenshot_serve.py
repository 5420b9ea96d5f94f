"""The web page's screenshot in the docs (docs/images/serve_page.png): `s2f serve` with the shipped demo model,
the conversation example clicked (two speakers, two faces), in headless Chromium.

    python tools/screenshot_serve.py [--out docs/images/serve_page.png] [--port 7899]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

FACES_SHOWN = "(n) => document.querySelectorAll('#face img').length === n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs/images/serve_page.png"))
    parser.add_argument("--port", type=int, default=7899)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    server = subprocess.Popen([sys.executable, "-m", "speech2face", "serve", "--model", "demo", "--port",
                               str(args.port), "--device", "cpu"], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{args.port}/"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=shutil.which("chromium"), headless=True,
                                             args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            page.goto(url)
            page.wait_for_selector("#draw")
            page.click("#example-conversation")
            page.wait_for_function(FACES_SHOWN, arg=2, timeout=60_000)
            time.sleep(0.5)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(timeout=30)
    print(args.out)


if __name__ == "__main__":
    main()
