"""Checks of a rendered HTML report: local links and images resolve, and (where Chromium is
installed) every page loads in headless Chromium and the index's screenshot is not blank."""

from __future__ import annotations

import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        wanted = {"a": "href", "img": "src", "link": "href", "script": "src"}.get(tag)
        for name, value in attrs:
            if name == wanted and value:
                self.links.append(value)


def local_targets(page: Path) -> list[Path]:
    """The files a page's relative links and images point to."""
    parser = _Links()
    parser.feed(page.read_text(encoding="utf-8"))
    out = []
    for link in parser.links:
        url = urlparse(link)
        if url.scheme or link.startswith("#") or not url.path:
            continue
        out.append((page.parent / unquote(url.path)).resolve())
    return out


def report_pages(index: Path) -> list[Path]:
    index = Path(index).resolve()
    return [index, *sorted({t for t in local_targets(index) if t.suffix == ".html"})]


def check_links(index: Path) -> list[Path]:
    """Every page the index links to, after checking that every local link of each resolves."""
    pages = report_pages(index)
    for page in pages:
        missing = [t for t in local_targets(page) if not t.exists()]
        assert not missing, f"{page.name}: links to missing files {missing[:5]}"
    return pages


def chromium() -> str | None:
    return next((c for c in ("chromium", "chromium-browser", "google-chrome") if shutil.which(c)), None)


def check_in_browser(index: Path, screenshot: Path) -> None:
    """Load every page in headless Chromium (its DOM must come back with the page's content)
    and screenshot the index: the picture must not be a blank page."""
    import matplotlib.image as mpimg

    index = Path(index).resolve()
    browser = chromium()
    assert browser, "no Chromium: apt-get install chromium"
    base = [browser, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--hide-scrollbars"]
    for page in check_links(index):
        dom = subprocess.run([*base, "--dump-dom", page.as_uri()], capture_output=True, text=True, timeout=120)
        assert dom.returncode == 0 and "<body" in dom.stdout and len(dom.stdout) > 1000, f"{page.name} did not load: {dom.stderr[-500:]}"
    shot = subprocess.run([*base, f"--screenshot={screenshot}", "--window-size=1200,900", index.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert shot.returncode == 0 and screenshot.exists(), shot.stderr[-500:]
    pixels = mpimg.imread(str(screenshot))
    assert float(pixels[..., :3].std()) > 0.02, "the index's screenshot is blank"
