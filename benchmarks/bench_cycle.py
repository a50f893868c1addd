"""Cycle-time estimators on 1,000,000 deals, against the library defaults, in one run.

Prints, for the same data: our Kaplan-Meier + Aalen-Johansen (both causes, with
CIs), our Efron Cox with 10 covariate columns, then lifelines'
KaplanMeierFitter + AalenJohansenFitter (both causes, with its variance) and
statsmodels' PHReg (Efron) on the same design, and the peak memory of our part.

Run: ``.venv/bin/python benchmarks/bench_cycle.py [n_deals] [--skip-reference]``
(the lifelines reference takes a few minutes at 1M deals).
"""
from __future__ import annotations

import resource
import sys
import time
import tracemalloc
import warnings

import numpy as np

from workbench.stats.coxph import fit_cox
from workbench.cycle.times import design_matrix, durations
from workbench.exceptions import DataQualityWarning
from workbench.dataset.sample import generate
from workbench.stats.survival import competing_risks

COVARIATES = ["persona", "channel", "amount", "region"]


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _timed(label, fn, results):
    start = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - start
    print(f"  {label:<46} {results[label]:8.2f} s")
    return value


def main(n_deals: int = 1_000_000, reference: bool = True) -> dict:
    warnings.simplefilter("ignore", DataQualityWarning)
    start = time.perf_counter()
    data = generate(n_deals=n_deals, seed="benchmark", truth_deals=1000)
    frame = durations(data.dataset())
    X, _ = design_matrix(frame, COVARIATES)
    X = X.iloc[:, :10]
    t, e = frame["days"].to_numpy(), frame["event"].to_numpy()
    print(f"{n_deals:,} deals ({(e == 'open').mean():.0%} open, {len(np.unique(t)):,} distinct days), "
          f"{X.shape[1]} Cox columns: {list(X.columns)}; data ready in {time.perf_counter() - start:.1f} s")
    r: dict = {}
    print("workbench")
    tracemalloc.start()
    fit = _timed("KM + Aalen-Johansen (won, lost) with CIs", lambda: competing_risks(t, e, censored="open"), r)
    _timed("  + median and quartiles with CIs", lambda: [fit.quantile(q) for q in (0.25, 0.5, 0.75)], r)
    cox = _timed("Cox, Efron ties, time to win", lambda: fit_cox(t, e == "won", X.to_numpy()), r)
    _timed("  + Schoenfeld PH test", cox.proportional_hazards_test, r)
    ours = sum(r.values())
    analysis_peak = tracemalloc.get_traced_memory()[1] / 1024**3
    tracemalloc.stop()
    print(f"  {'total':<46} {ours:8.2f} s   (bar: < 15 s)")
    print(f"  peak memory: analysis {analysis_peak:.2f} GB above the loaded data; whole process so far "
          f"{_peak_gb():.2f} GB including generating the 1M-deal sample (bar: < 3 GB)")
    if reference:
        from lifelines import AalenJohansenFitter, KaplanMeierFitter
        from statsmodels.duration.hazard_regression import PHReg

        codes = np.select([e == "won", e == "lost"], [1, 2], 0)
        print("library defaults on the same data")
        _timed("lifelines KaplanMeierFitter", lambda: KaplanMeierFitter().fit(t, codes > 0), r)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _timed("lifelines AalenJohansenFitter won (jitters ties)",
                   lambda: AalenJohansenFitter(seed=0).fit(t, codes, event_of_interest=1), r)
            _timed("lifelines AalenJohansenFitter lost (jitters ties)",
                   lambda: AalenJohansenFitter(seed=0).fit(t, codes, event_of_interest=2), r)
        _timed("statsmodels PHReg, Efron ties", lambda: PHReg(t, X.to_numpy(), status=(e == "won").astype(float),
                                                              ties="efron").fit(), r)
        lib_aj = r["lifelines AalenJohansenFitter won (jitters ties)"] + r["lifelines AalenJohansenFitter lost (jitters ties)"]
        ours_aj = r["KM + Aalen-Johansen (won, lost) with CIs"]
        print(f"Aalen-Johansen with CIs, both causes: workbench {ours_aj:.2f} s vs lifelines {lib_aj:.1f} s "
              f"-> {lib_aj / ours_aj:.0f}x faster (bar: >= 10x)")
        print(f"Cox, 10 columns: workbench {r['Cox, Efron ties, time to win']:.2f} s vs statsmodels "
              f"{r['statsmodels PHReg, Efron ties']:.1f} s")
    return r


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 1_000_000, reference="--skip-reference" not in sys.argv)
