"""Gray's test (workbench.stats.gray) against R's cmprsk::cuminc."""
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from numpy.testing import assert_allclose
from scipy import stats

from workbench.stats.gray import gray_table, gray_test

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="module")
def data():
    return pd.read_csv(GOLDEN / "competing_data.csv")


@pytest.mark.parametrize("strata", [False, True])
def test_statistics_match_cuminc(data, strata):
    """On R's tied data, the statistic, df and p-value of each cause equal cuminc's Tests, without and with strata."""
    golden = pd.read_csv(GOLDEN / "cuminc_tests.csv")
    golden = golden[golden["strata"] == strata].set_index("cause")
    tests = gray_test(data["time"], data["status"], data["group"], data["stratum"] if strata else None)
    assert list(tests) == [1, 2]
    for cause, test in tests.items():
        assert test.df == golden.loc[cause, "df"]
        assert_allclose(test.statistic, golden.loc[cause, "stat"], rtol=1e-9)
        assert_allclose(test.p_value, golden.loc[cause, "pv"], rtol=1e-9)


def test_group_labels_and_order_do_not_matter(data):
    """Renaming the groups (which changes the group left out of the score) leaves the statistic unchanged."""
    a = gray_test(data["time"], data["status"], data["group"])
    b = gray_test(data["time"], data["status"], data["group"].map({"a": "z", "b": "b", "c": "c"}))
    assert_allclose([a[c].statistic for c in a], [b[c].statistic for c in b], rtol=1e-10)


def test_identical_groups_are_not_significant_and_shifted_ones_are():
    """Two groups drawn alike give p-values roughly uniform (few below 0.05); a group that wins twice as often is found."""
    rng = np.random.default_rng(17)
    small = 0
    for _ in range(40):
        t = np.ceil(rng.exponential(30, 200))
        cause = rng.choice([0, 1, 2], 200, p=[0.2, 0.4, 0.4])
        small += gray_test(t, cause, rng.integers(0, 2, 200))[1].p_value < 0.05
    assert small <= 6
    group = np.repeat([0, 1], 300)
    cause = np.where(rng.random(600) < np.where(group == 1, 0.6, 0.3), 1, 2)
    tests = gray_test(np.ceil(rng.exponential(30, 600)), cause, group)
    assert tests[1].p_value < 1e-4 and tests[1].score[0] < 0


def test_table_and_chi_square():
    """gray_table lists every cause; the p-value is the chi-square tail with k-1 df."""
    t = np.arange(1, 13, dtype=float)
    tests = gray_test(t, ["won", "lost", 0] * 4, ["a", "b", "c"] * 4)
    table = gray_table(tests)
    assert list(table["cause"]) == ["lost", "won"] and (table["df"] == 2).all()
    finite = table.dropna()
    assert_allclose(finite["p_value"], stats.chi2.sf(finite["statistic"], 2))


def test_needs_two_groups():
    """One group is refused."""
    with pytest.raises(ValueError, match="two groups"):
        gray_test([1, 2], [1, 2], ["a", "a"])


def test_blocks_of_times_give_the_same_statistic(data, monkeypatch):
    """Computed a few distinct times at a time (as on data with very many distinct times), the statistics are
    the same as in one block."""
    from workbench.stats import gray

    whole = gray_test(data["time"], data["status"], data["group"], data["stratum"])
    monkeypatch.setattr(gray, "_BLOCK", 9 * 4)
    blocked = gray_test(data["time"], data["status"], data["group"], data["stratum"])
    assert_allclose([blocked[c].statistic for c in (1, 2)], [whole[c].statistic for c in (1, 2)], rtol=1e-12)


@pytest.mark.parametrize("values", [
    ["b", "a", "b", "c", "a"],
    ["10", "9", "10", "é", "É"],
    [1, "1", 1.0, True, "x"],  # one value to pandas' hash table, four texts
    ["a", None, np.nan, "b", None],
    [3, 1, 2, 1],
])
def test_group_labels_are_the_texts_of_the_values(values):
    """Groups are told apart by their text, sorted, as ``np.unique(groups.astype(str))`` does; the faster
    way through the distinct values gives the same labels and places."""
    from workbench.stats.gray import _labels

    values = np.array(values, dtype=object)
    labels, places = _labels(values)
    want_labels, want_places = np.unique(values.astype(str), return_inverse=True)
    np.testing.assert_array_equal(labels, want_labels)
    np.testing.assert_array_equal(places, want_places)
