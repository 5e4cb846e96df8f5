"""The HTML report of a finished demo run, as a person sees it: rendered by headless Chromium, screenshotted,
its plots drawn, and not one network request made by the page."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars"]


@pytest.fixture(scope="module")
def chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        message = "chromium is not installed (Debian package `chromium`; .ci/run installs it)"
        if os.environ.get("CI", "").lower() not in ("", "0", "false", "no"):
            pytest.fail(message)
        pytest.skip(message)
    return exe


def _run(chromium: str, tmp: Path, url: str, *extra: str) -> subprocess.CompletedProcess:
    profile = tmp / f"profile-{len(list(tmp.glob('profile-*')))}"
    res = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *extra, url], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    return res


def _page_requests(net_log: Path) -> list[str]:
    """URLs the page itself asked for: requests whose initiator is the page, not the browser's own services."""
    log = json.loads(net_log.read_text())
    start = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    return [e["params"]["url"] for e in log["events"] if e["type"] == start and "url" in e.get("params", {})
            and e["params"].get("initiator") != "not an origin"]


def _pixels(png: Path, box=None):
    from PIL import Image, ImageStat

    img = Image.open(png).convert("RGB")
    if box:
        img = img.crop(box)
    grey = ImageStat.Stat(img.convert("L"))
    return grey.stddev[0], len(img.getcolors(1 << 20) or [])


@pytest.fixture(scope="module")
def report(demo_run) -> Path:
    res = subprocess.run([sys.executable, "-m", "hone.cli", "report", str(demo_run), "--html"], capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    assert str(demo_run / "report.html") in res.stdout
    return demo_run / "report.html"


def test_report_is_self_contained(report):
    page = report.read_text()
    assert "Content-Security-Policy" in page and "default-src 'none'" in page
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", page, re.I)
    assert "<script" not in page.lower() and "@import" not in page
    assert not re.search(r"url\(\s*['\"]?(?!#)", page)  # only in-page references such as url(#clip)
    for heading in ("Rounds", "Win / tie / loss", "Accuracy per category", "Training data", "Judge calls",
                    "Merge verification", "Failure clusters"):
        assert f"<h2>{heading}" in page
    # The first screen leads with verified vs control on the same items, as the demo's summary has it.
    c = json.loads((report.parent / "summary.json").read_text())["verified_vs_control"]
    lead = page.index("What verification buys")
    assert lead < page.index("<div class=cards>")
    assert f"final models on the same {c['n']} items: {100 * c['difference']:+.1f} pts" in page[lead:]
    assert f"same {c['n']} items" in (report.parent / "report.md").read_text().split("![")[0]


def test_report_renders_in_chromium_with_plots_and_no_network(report, chromium, tmp_path):
    shot = tmp_path / "report.png"
    net = tmp_path / "net.json"
    _run(chromium, tmp_path, report.as_uri(), "--window-size=1280,900", f"--screenshot={shot}",
         f"--log-net-log={net}")
    stddev, colours = _pixels(shot)
    assert stddev > 20 and colours > 50, (stddev, colours)  # text, cards and plots, not a blank page
    assert _page_requests(net) == []

    # The DOM Chromium built holds the plots as SVG elements with drawn paths and text.
    dom = _run(chromium, tmp_path, report.as_uri(), "--dump-dom").stdout
    svgs = re.findall(r"<svg\b.*?</svg>", dom, re.S)
    assert len(svgs) >= 3  # accuracy, uplift, win/tie/loss
    assert all(s.count("<path") >= 5 for s in svgs)
    assert "Held-out accuracy after each round" in svgs[0] and "verified" in svgs[0] and "control" in svgs[0]

    # Each plot, laid out on its own, is drawn by Chromium (not an empty box).
    sized = [s.replace("<svg", "<svg style='width:640px;height:480px'", 1) for s in svgs[:3]]
    boards = "".join(f"<div style='position:absolute;left:0;top:{500 * i}px'>{s}</div>" for i, s in enumerate(sized))
    plots = tmp_path / "plots.html"
    plots.write_text(f"<!doctype html><body style='margin:0;background:#fff'>{boards}</body>")
    plot_shot = tmp_path / "plots.png"
    _run(chromium, tmp_path, plots.as_uri(), "--window-size=640,1500", f"--screenshot={plot_shot}")
    for i in range(3):
        stddev, colours = _pixels(plot_shot, (0, 500 * i, 640, 500 * i + 480))
        assert stddev > 15 and colours > 10, (i, stddev, colours)


def test_network_check_sees_a_page_request(chromium, tmp_path):
    """The network check itself: a page that loads an image from 127.0.0.1 is caught."""
    page = tmp_path / "leaky.html"
    page.write_text("<!doctype html><img src='http://127.0.0.1:9/pixel.png'>")
    net = tmp_path / "net.json"
    _run(chromium, tmp_path, page.as_uri(), f"--log-net-log={net}", "--dump-dom")
    assert _page_requests(net) == ["http://127.0.0.1:9/pixel.png"]
