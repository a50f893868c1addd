"""The journey grid builder works in a real JupyterLab: headless Debian Chromium driven by Playwright.

Skipped when `chromium` is not installed and `CI` is unset; under CI a missing browser or a missing
`playwright` package fails (tests/jupyter_lab.py, as tests/test_report_browser.py).
"""
import shutil
from pathlib import Path

import numpy as np
import pytest
from matplotlib.image import imread

from jupyter_lab import VIEWPORT, chromium_page, jupyter_lab, open_notebook, require_browser, run_all_cells

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "journey_grid.ipynb"
#: The builder's cell editors and its live preview (the static grids above it are not widgets).
CELL_BOX = ".widget-textarea textarea"
PREVIEW = ".widget-html .wb-journey"
PERSONA = ".widget-dropdown select"
TYPED = "Reads two analyst reports"


def _preview_cell(lane: str, stage: str) -> str:
    return f'{PREVIEW} td[data-lane="{lane}"][data-stage="{stage}"]'


@pytest.mark.slow
def test_editing_a_cell_in_the_builder_updates_the_grid(tmp_path):
    """Open journey_grid.ipynb in JupyterLab, run it, type into the first cell of the builder: the grid
    below shows the text keystroke by keystroke; picking a persona re-renders the grid for it."""
    require_browser()  # skip (or fail under CI) before starting JupyterLab for nothing
    shutil.copy(NOTEBOOK, tmp_path / NOTEBOOK.name)
    shot = tmp_path / "lab.png"
    with jupyter_lab(tmp_path) as lab, chromium_page(screenshot_on_failure=tmp_path / "failure.png") as page:
        assert open_notebook(page, lab, NOTEBOOK.name) == "workbench"
        run_all_cells(page, wait_for=PREVIEW, timeout=180)
        target = _preview_cell("What they do", "Recognising a need")
        suggested = page.locator(target).inner_text()
        assert suggested.startswith("Mostly"), suggested  # prefilled from the touchpoints

        box = page.locator(CELL_BOX).first
        box.scroll_into_view_if_needed()
        box.fill("")
        # Real key events, and no blur or Enter: only continuous updates can reach the kernel.
        box.press_sequentially(TYPED, delay=20)
        page.wait_for_function("([sel, text]) => document.querySelector(sel)?.textContent === text",
                               arg=[target, TYPED], timeout=60_000)
        page.locator(PREVIEW).first.scroll_into_view_if_needed()
        page.screenshot(path=str(shot))

        page.locator(PERSONA).first.select_option("Procurement")
        page.wait_for_function("(sel) => document.querySelector(sel)?.textContent.includes('Procurement')",
                               arg=f"{PREVIEW} h2", timeout=60_000)
        assert page.locator(target).inner_text().startswith("Mostly")  # Procurement's own suggestion

    rgb = (imread(shot)[..., :3] * 255).round().astype(np.uint8)
    assert rgb.shape[:2] == (VIEWPORT["height"], VIEWPORT["width"])
    assert rgb.std() > 10 and len(np.unique(rgb.reshape(-1, 3), axis=0)) > 50, "the screenshot is blank"
