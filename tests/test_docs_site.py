"""The site builds in strict mode, and a browser shows its home page and softmax's reference.

The build (figures by ``docs/scripts/make_figures.py``, then ``mkdocs build --strict``)
fails on a broken link, a missing reference or a docstring mkdocstrings cannot parse.
The pages are then rendered by headless Chromium (Debian's ``chromium``, which ``make
test`` installs where apt-get can), and what it shows is checked: the title, the
navigation, and the signature of ``softmax``.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if (
        importlib.util.find_spec("mkdocs") is None
        or importlib.util.find_spec("mkdocstrings") is None
    ):
        pytest.skip("the `docs` extra is not installed (make setup installs it): site not built")
    env = {**os.environ, "MPLBACKEND": "Agg", "NO_MKDOCS_2_WARNING": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    subprocess.run(
        [sys.executable, str(ROOT / "docs" / "scripts" / "make_figures.py")],
        check=True, env=env, cwd=ROOT, timeout=300,
    )  # fmt: skip
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert build.returncode == 0, f"mkdocs build --strict failed:\n{build.stdout}{build.stderr}"
    return out


def test_site_has_a_page_per_module_and_the_figures(site: Path) -> None:
    for module in ("softmaxkit", "nn", "sampling", "torch", "distributed", "data"):
        assert (site / "reference" / module / "index.html").is_file()
    html = (site / "reference" / "softmaxkit" / "index.html").read_text()
    for name in ("cross_entropy", "sparsemax", "Classifier", "SoftmaxkitError"):
        assert f'id="softmaxkit.{name}"' in html, name
    assert (site / "figures" / "demo_test_examples.png").stat().st_size > 10_000


class _Text(HTMLParser):
    """The title, the navigation's link texts and the visible text of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.title, self.nav, self.text = "", [], []
        self._stack: list[str] = []
        self._in_nav = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self._stack.append(tag)
        if tag == "nav":
            self._in_nav += 1

    def handle_endtag(self, tag: str) -> None:
        while self._stack and self._stack.pop() != tag:
            pass
        if tag == "nav":
            self._in_nav -= 1

    def handle_data(self, data: str) -> None:
        if "script" in self._stack or "style" in self._stack:
            return
        if self._stack and self._stack[-1] == "title":
            self.title += data
        if self._in_nav and data.strip():
            self.nav.append(data.strip())
        self.text.append(data)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        if path := shutil.which(name):
            return path
    pytest.skip("chromium is not installed (`make test` installs it where apt-get can)")


def _render(page: Path, tmp_path: Path) -> _Text:
    flags = [
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom",
    ]  # fmt: skip
    done = subprocess.run(
        [_chromium(), *flags, page.as_uri()], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "<html" in done.stdout, done.stderr[-2000:]
    parsed = _Text()
    parsed.feed(done.stdout)
    return parsed


def test_browser_shows_title_navigation_and_softmax_signature(site: Path, tmp_path: Path) -> None:
    home = _render(site / "index.html", tmp_path)
    assert home.title.strip().startswith("softmaxkit")
    for entry in ("Tutorials", "How-to guides", "Reference", "From scores to probabilities"):
        assert entry in home.nav, f"{entry!r} not in the navigation: {home.nav[:40]}"
    reference = _render(site / "reference" / "softmaxkit" / "index.html", tmp_path)
    assert "softmaxkit" in reference.title
    assert "softmaxkit.nn" in reference.nav
    text = re.sub(r"\s+", " ", "".join(reference.text))
    signature = re.search(
        r"softmax\( ?x\b[^)]*?/,[^)]*?axis[^)]*?temperature[^)]*?where[^)]*\)", text
    )
    assert signature, "the signature of softmax is not on its reference page"
