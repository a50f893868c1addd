"""Tables display numbers readably (three significant figures, separators, p-values) and keep the data."""
import numpy as np
import pandas as pd
import pytest

from workbench.tables import Table, format_number, format_p, formatted, show, to_html


@pytest.mark.parametrize("value, text", [
    (0.229174, "0.229"), (21.333, "21.3"), (0.5, "0.5"), (12.0, "12"), (100.0, "100"), (-0.0456, "-0.0456"),
    (0.0012345, "0.00123"), (2.3e-05, "2.3e-05"), (0.0, "0"), (999.4, "999"), (999.6, "1,000"),
    (5062345.2, "5,062,345"), (np.int64(3581), "3,581"), (7, "7"), (float("nan"), ""), (None, ""),
    (float("inf"), "inf"), (True, "True"),
])
def test_numbers_get_three_significant_figures_in_plain_notation(value, text):
    assert format_number(value) == text


@pytest.mark.parametrize("value, text", [
    (1e-12, "<0.001"), (0.00099, "<0.001"), (0.0049, "0.005"), (0.013, "0.013"), (0.049, "0.049"),
    (0.42, "0.42"), (float("nan"), ""),
])
def test_p_values_read_as_p_values(value, text):
    assert format_p(value) == text


def test_columns_are_formatted_by_kind_and_the_data_is_kept():
    """p-value columns by name (not `p_win`), counts with separators, text and flags untouched."""
    frame = pd.DataFrame({"segment": ["<b>a</b>", "b"], "deals": [3581, 12], "p_value": [0.0247, 1e-9],
                          "logrank_p": [0.5, np.nan], "p_win": [0.5, 0.25], "closed": [True, False],
                          "days": [12.25, np.nan]})
    shown = formatted(frame)
    assert shown.to_dict("list") == {"segment": ["<b>a</b>", "b"], "deals": ["3,581", "12"],
                                     "p_value": ["0.025", "<0.001"], "logrank_p": ["0.50", ""],
                                     "p_win": ["0.5", "0.25"], "closed": [True, False], "days": ["12.2", ""]}
    assert frame["p_value"].tolist() == [0.0247, 1e-9]  # the source frame is not changed
    table = show(frame)
    assert isinstance(table, Table) and table.frame is frame


def test_html_drops_the_default_index_keeps_a_named_one_and_escapes_cells():
    frame = pd.DataFrame({"segment": ["<b>a</b>"], "share": [0.123456]})
    html = to_html(frame)
    assert "&lt;b&gt;a&lt;/b&gt;" in html and "<b>a</b>" not in html and "0.123" in html
    assert "<th>0</th>" not in html and 'class="dataframe wb-table"' in html
    assert "<th>a</th>" in to_html(pd.DataFrame({"share": [0.5]}, index=pd.Index(["a"], name="channel")))
    assert "<th>0</th>" in to_html(frame, index=True)
    assert show(frame)._repr_html_() == html
    assert repr(show(frame)).split() == ["segment", "share", "<b>a</b>", "0.123"]
