"""Reports open in a real browser: Debian's `chromium`, headless, with the network cut off.

Skipped when `chromium` is not installed and `CI` is unset; under CI a missing browser fails
(`.ci/run` installs it through `.ci/browser.sh`).
"""
import base64
import datetime as dt
import io
import os
import shutil
import subprocess

import nbformat
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from matplotlib.image import imread

from workbench.run.report import render_report, write_index

CHROMIUM = shutil.which("chromium")
#: The flags that work in containers and as root; no first-run, sync or update traffic, and every
#: host name unresolvable, so a page that needed the network would show it.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--host-resolver-rules=MAP * ~NOTFOUND", "--hide-scrollbars")
BRAND = "#1f4e79"
BAR = "#d62728"
WINDOW = (1280, 2000)


def _in_ci() -> bool:
    """`CI` is set to anything but an explicit no, as tests/conftest.py reads it."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


@pytest.fixture(scope="module")
def chromium():
    """Debian's `chromium`: skipped when absent locally, a failure when absent under CI."""
    if CHROMIUM is None:
        if _in_ci():
            pytest.fail("CI is set but Debian's `chromium` is not installed, so the browser tests cannot run: "
                        "run the suite through `.ci/run`, which sources .ci/browser.sh (ensure_chromium).",
                        pytrace=False)
        pytest.skip("Debian's `chromium` is not installed (`apt-get install chromium`, or "
                    "`source .ci/browser.sh && ensure_chromium`); under CI this fails")
    return CHROMIUM


def _browse(chromium, tmp_path, page, *args) -> str:
    """Run headless Chromium on a local page with a fresh profile; its stdout."""
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    profile.mkdir()
    done = subprocess.run([chromium, *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.fixture
def report(tmp_path):
    """A report of one executed-looking notebook: two headings, a red bar chart, a table."""
    fig = Figure(figsize=(6, 3), dpi=100)
    fig.add_subplot().bar(["Lead", "Qualified", "Won"], [10, 7, 4], color=BAR)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    png = base64.b64encode(buffer.getvalue()).decode()
    table = pd.DataFrame({"stage": ["Lead", "Qualified", "Won"], "deals": [10, 7, 4]})
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Deal flow\n\nHow deals move from stage to stage."),
        nbformat.v4.new_code_cell("plot()", outputs=[nbformat.v4.new_output(
            "display_data", data={"image/png": png, "text/plain": "<Figure>"})]),
        nbformat.v4.new_markdown_cell("## Deals by stage"),
        nbformat.v4.new_code_cell("table", outputs=[nbformat.v4.new_output(
            "execute_result", data={"text/html": table.to_html(), "text/plain": str(table)}, execution_count=2)]),
    ])
    nbformat.write(nb, tmp_path / "deal_flow.ipynb")
    return render_report([tmp_path / "deal_flow.ipynb"], tmp_path / "run" / "segments" / "ent" / "report.html",
                         title="Pipeline review", client="Acme Industries",
                         branding={"primary_color": BRAND, "logo_text": "Northwind Analytics"},
                         segment_label="Enterprise", quality_note="12 rows excluded: closed before created.",
                         findings=["Half of all deals close within **41 days**."], generated_on=dt.date(2025, 11, 23))


def _pixels(rgb: np.ndarray, hex_colour: str, tolerance: int = 12) -> int:
    """How many pixels are within `tolerance` (0-255 per channel) of a colour."""
    target = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    return int((np.abs(rgb.astype(int) - target) <= tolerance).all(axis=-1).sum())


def test_report_dom_has_the_title_contents_headings_and_image(chromium, report, tmp_path):
    """Parsed by Chromium, the report keeps its title page, findings, contents, anchored headings and inline PNG."""
    dom = _browse(chromium, tmp_path, report, "--dump-dom")
    assert "Pipeline review" in dom and "Acme Industries" in dom and "23 November 2025" in dom
    assert "<strong>41 days</strong>" in dom and "12 rows excluded: closed before created." in dom
    assert '<a href="#section-1">Deal flow</a>' in dom and '<a href="#section-2">Deals by stage</a>' in dom
    assert 'id="section-1"' in dom and 'id="section-2"' in dom
    assert dom.count('src="data:image/png;base64,') == 1
    assert "<td>Qualified</td>" in dom and "plot()" not in dom


def test_report_screenshot_shows_the_brand_and_the_figure(chromium, report, tmp_path):
    """The screenshot is not blank: varied pixels, the brand-coloured masthead, and the figure's red bars."""
    shot = tmp_path / "report.png"
    _browse(chromium, tmp_path, report, f"--screenshot={shot}", f"--window-size={WINDOW[0]},{WINDOW[1]}")
    rgb = (imread(shot)[..., :3] * 255).round().astype(np.uint8)
    assert rgb.shape[:2] == (WINDOW[1], WINDOW[0])
    assert rgb.std() > 20 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50
    assert _pixels(rgb, BRAND) > 980 * 30  # the masthead band across the page
    assert _pixels(rgb, BAR) > 10_000  # the bar chart's image was decoded and drawn


def test_index_dom_links_the_segments(chromium, report, tmp_path):
    """The run index, parsed by Chromium, links the segment's report and shows its formatted headline."""
    run_dir = report.parents[2]
    index = write_index(run_dir, [
        {"segment": "ent", "label": "Enterprise", "href": "segments/ent/report.html", "status": "ok",
         "headline": {"deals": 1234, "win_probability": 0.42, "median_days_to_close": 41}},
        {"segment": "smb", "label": "SMB", "href": "segments/smb/report.html", "status": "too_small",
         "headline": {"deals": 12}},
    ], title="Pipeline review", client="Acme Industries", branding={"primary_color": BRAND})
    dom = _browse(chromium, tmp_path, index, "--dump-dom")
    assert '<a href="segments/ent/report.html">Enterprise</a>' in dom
    assert "1,234" in dom and "42%" in dom and "41 days" in dom and "Too few deals" in dom


def test_a_wide_table_scrolls_inside_the_page_and_its_numbers_are_formatted(tmp_path):
    """A table wider than the page stays within the page box (it scrolls sideways) and shows formatted numbers."""
    from jupyter_lab import chromium_page
    from workbench.tables import show

    wide = pd.DataFrame({f"column_with_a_long_name_{i}": [0.123456 * (i + 1), 1234567.0] for i in range(14)})
    table = show(wide)
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_markdown_cell("# Wide"),
        nbformat.v4.new_code_cell("show(wide)", outputs=[nbformat.v4.new_output(
            "execute_result", data={"text/html": table._repr_html_(), "text/plain": repr(table)}, execution_count=1)]),
    ])
    nbformat.write(nb, tmp_path / "wide.ipynb")
    page_file = render_report([tmp_path / "wide.ipynb"], tmp_path / "report.html", title="Wide", client="Client",
                              branding={}, segment_label="all", quality_note="", findings=[])
    with chromium_page(viewport={"width": 1280, "height": 900}) as page:
        page.goto(page_file.as_uri())
        box = page.evaluate("""() => {
            const table = document.querySelector('table.wb-table');
            const page = document.querySelector('.wb-page').getBoundingClientRect();
            return {right: table.getBoundingClientRect().right, pageRight: page.right,
                    scroll: table.scrollWidth, client: table.clientWidth,
                    cells: [...table.querySelectorAll('td')].map(td => td.textContent)};
        }""")
    assert box["right"] <= box["pageRight"] and box["scroll"] > box["client"], box
    assert box["cells"][:2] == ["0.123", "0.247"] and "1,234,567" in box["cells"]
    assert not any("e+" in c for c in box["cells"])
