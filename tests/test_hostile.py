"""CRM text is data, never markup: hostile values in every text column and label stay text.

A sample whose personas, channels, regions, industries, products, reasons, owners, stages,
contact roles and touchpoints hold scripts, event handlers, `javascript:` links, spreadsheet
formulas and template syntax (tests/shapes.py `HOSTILE`) runs through `workbench run` with all
five notebooks; every page it writes is opened in headless Chromium and searched for anything
live, and the journey exports are read back for formulas and raw HTML.
"""
import json
import warnings
from pathlib import Path
from xml.etree import ElementTree

import openpyxl
import pytest
import yaml

import shapes
from jupyter_lab import chromium_page
from workbench.cli import main
from workbench.journey.model import fit_to_dataset, template
from workbench.journey.export import export
from workbench.journey.facts import own_facts
from workbench.journey.render import prefill
from workbench.dataset.loader import load_dataset

#: Every attribute that could run code, and whether a handler already ran (it would set `__hit`).
LIVE = """() => {
  const live = [];
  for (const el of document.querySelectorAll('*')) {
    for (const a of el.attributes) {
      if (a.name.startsWith('on')) live.push(`${el.tagName} ${a.name}`);
      if (['href', 'src', 'xlink:href', 'action'].includes(a.name) && /^\\s*javascript:/i.test(a.value))
        live.push(`${el.tagName} ${a.name}=javascript:`);
    }
  }
  document.querySelectorAll('script, iframe, object, embed').forEach(el => live.push(el.tagName));
  return {hit: window.__hit || 0, live};
}"""


def _live(page, path: Path) -> dict:
    page.goto(path.resolve().as_uri())
    page.wait_for_timeout(200)  # an onerror/onload handler of a broken image runs by now
    return page.evaluate(LIVE)


@pytest.fixture(scope="module")
def hostile_run(tmp_path_factory):
    """The hostile sample run by persona with all five notebooks, its title, client and logo hostile too."""
    folder = tmp_path_factory.mktemp("hostile")
    dataset = shapes.hostile(folder / "data")
    spec = {"dataset": str(dataset), "output": str(folder / "out"), "workers": 2, "split": {"by": ["persona"]},
            "min_deals_per_segment": 150, "title": shapes.HOSTILE[0], "client": shapes.HOSTILE[1],
            "branding": {"logo_text": shapes.HOSTILE[6]}}
    (folder / "run.yaml").write_text(yaml.safe_dump(spec))
    code = main(["run", str(folder / "run.yaml")])
    return code, folder, dataset


@pytest.mark.slow
def test_the_check_finds_live_elements(tmp_path):
    """The browser check is able to fail: a page with a raw handler, a script and a javascript: link."""
    page_path = tmp_path / "bad.html"
    page_path.write_text(f"<p>{shapes.HOSTILE[0]}</p><a href='javascript:void(0)'>x</a><script>1</script>")
    with chromium_page() as page:
        found = _live(page, page_path)
    assert found["hit"] == 1 and len(found["live"]) == 3


@pytest.mark.slow
def test_hostile_text_runs_nowhere_in_the_reports_or_the_index(hostile_run):
    """Every report and the index: no handler ran, no element has an event attribute, a script or a
    javascript: URL, and the hostile text is shown as text."""
    code, folder, _ = hostile_run
    run = json.loads((folder / "out" / "run.json").read_text())
    assert code == 0 and all(s["status"] in ("ok", "too_small") for s in run["segments"]), run["segments"]
    pages = [folder / "out" / "index.html", *sorted((folder / "out" / "segments").glob("*/report.html"))]
    assert len(pages) >= 3
    with chromium_page() as page:
        for path in pages:
            assert _live(page, path) == {"hit": 0, "live": []}, path
    overall = (folder / "out" / "segments" / "overall" / "report.html").read_text()
    assert "&lt;img src=x onerror=" in overall and "=HYPERLINK(" in overall and "{{ 7*7 }}" in overall


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".xlsx", ".md", ".svg", ".html"])
def test_journey_exports_keep_hostile_text_as_text(hostile_run, suffix, tmp_path):
    """Journey exports of the hostile data: no formula cell in the XLSX, no raw HTML in the Markdown, no
    script or handler in the SVG, nothing live in the standalone HTML."""
    _, _, dataset_path = hostile_run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = load_dataset(dataset_path)
        journey = fit_to_dataset(template("b2b"), dataset)
        facts = own_facts(dataset, journey)
    path = export(prefill(journey, facts, facts.personas[0]), facts, tmp_path / f"grid{suffix}")
    if suffix == ".xlsx":
        cells = [c for row in openpyxl.load_workbook(path).active.iter_rows() for c in row if c.value is not None]
        assert not [c.coordinate for c in cells if c.data_type == "f"]
        assert any(str(c.value).startswith("=HYPERLINK(") for c in cells)  # kept, as text
    elif suffix == ".md":
        text = path.read_text()
        assert "<img" not in text and "<svg" not in text and "](javascript:" not in text
        assert "&lt;img src=x onerror=" in text
    elif suffix == ".svg":
        elements = list(ElementTree.parse(path).iter())
        assert not [e.tag for e in elements if e.tag.rsplit("}", 1)[-1] in ("script", "foreignObject")]
        assert not [(e.tag, a) for e in elements for a in e.attrib if a.lower().startswith("on")]
        assert any("onerror=" in (e.text or "") for e in elements)  # the hostile text, as text
    else:
        with chromium_page() as page:
            assert _live(page, path) == {"hit": 0, "live": []}
