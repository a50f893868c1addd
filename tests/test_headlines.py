"""Each segment against all deals: the index's headlines and the report's first finding."""
from __future__ import annotations

from workbench.run.headlines import insert_versus, overall_headline, plural, run_headlines, versus_all


def summary(share, low=None, high=None, horizon=365, median=80.0):
    interval = [low, high] if low is not None else None
    return {"win_probability": share, "win_probability_interval": interval, "horizon_days": horizon,
            "median_days_to_close": median}


def segment(slug, label, value=None, column="persona"):
    return {"slug": slug, "label": label, "filter": {column: value or label} if slug != "overall" else {}}


def test_plural_of_column_names():
    assert [plural(c) for c in ("persona", "industry", "business_unit", "class", "day")] == [
        "personas", "industries", "business units", "classes", "days"]


def test_a_segment_outside_its_interval_is_called_lower_and_ranked():
    everyone = summary(0.33, 0.32, 0.34)
    peers = {"a": summary(0.23, 0.20, 0.26, median=90), "b": summary(0.30, 0.28, 0.36),
             "c": summary(0.40, 0.37, 0.43)}
    text = versus_all("Procurement", peers["a"], everyone, list(peers.values()), "personas")
    assert text == ("Procurement wins 23% of its deals within 365 days (95% interval 20% to 26%), less than all deals "
                    "(33%): the lowest of 3 personas. Half its deals close within 90 days, against 80 days for all deals.")
    assert "the highest of 3 personas" in versus_all("C", peers["c"], everyone, list(peers.values()), "personas")


def test_an_interval_holding_the_overall_share_is_about_the_same():
    text = versus_all("IT", summary(0.31, 0.25, 0.37), summary(0.33), [], "personas")
    assert "about the same as all deals (33%)" in text
    assert "less than" not in text and "lowest" not in text  # two peers or fewer: no rank


def test_shares_at_different_horizons_are_not_compared():
    text = versus_all("IT", summary(0.31, 0.25, 0.37, horizon=180), summary(0.33, horizon=365), [], "personas")
    assert text.startswith("IT wins 31% of its deals within 180 days")
    assert "all deals (" not in text


def test_deals_closing_within_hours_are_told_in_hours():
    """A process log whose deals close within hours: the horizon and medians in hours, as the reports say them."""
    text = versus_all("Online", summary(0.4, 0.3, 0.5, horizon=0.5, median=0.25), summary(0.35, horizon=0.5, median=0.2))
    assert text.startswith("Online wins 40% of its deals within 12 hours")
    assert text.endswith("Half its deals close within 6 hours, against 4.8 hours for all deals.")
    assert overall_headline(summary(0.35, horizon=0.5, median=0.2)) == (
        "35% of deals won within 12 hours; half of them close within 4.8 hours.")


def test_missing_figures_give_no_sentence():
    assert versus_all("IT", {"win_probability": None}, summary(0.3)) == ""
    assert overall_headline({}) == ""


def test_run_headlines_describe_all_deals_and_compare_each_segment():
    segments = [segment("overall", "All deals"), segment("a", "A"), segment("b", "B"), segment("c", "C"),
                segment("r", "EMEA", column="region")]
    summaries = {"overall": summary(0.30, median=70), "a": summary(0.10, 0.05, 0.15), "b": summary(0.30, 0.2, 0.4),
                 "c": summary(0.50, 0.45, 0.55), "r": summary(0.31, 0.2, 0.4)}
    out = run_headlines(segments, summaries)
    assert out["overall"] == "30% of deals won within 365 days; half of them close within 70 days."
    assert "the lowest of 3 personas" in out["a"]
    assert "region" not in out["r"] and "about the same" in out["r"]  # a region is not ranked among personas


def test_labels_are_escaped_for_the_report(tmp_path):
    """A label typed in the CRM reaches the report as text: the sentence is escaped, never markup."""
    hostile = "<img src=x onerror=alert(1)> **bold**"
    segments = [segment("overall", "All deals"), segment("h", hostile)]
    sentence = run_headlines(segments, {"overall": summary(0.3), "h": summary(0.2, 0.1, 0.25)})["h"]
    report = tmp_path / "report.html"
    report.write_text("<ul><!--wb-versus--><!--/wb-versus--><li>other</li></ul>")
    assert insert_versus(report, sentence)
    page = report.read_text()
    assert "<img" not in page and "<strong>" not in page
    assert "&lt;img src=x onerror=alert(1)&gt; **bold** wins 20%" in page
    insert_versus(report, "Again.")  # a rerun replaces the sentence, never adds a second one
    assert report.read_text() == '<ul><!--wb-versus--><li class="wb-versus">Again.</li><!--/wb-versus--><li>other</li></ul>'


def test_a_report_without_the_markers_is_left_alone(tmp_path):
    report = tmp_path / "report.html"
    report.write_text("<p>old</p>")
    assert not insert_versus(report, "x")
    assert report.read_text() == "<p>old</p>"
