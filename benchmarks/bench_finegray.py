"""Fine-Gray regression on 100,000 deals x 20 columns, against the logistic model and R's crr.

Prints, for the same simulated deals (whole days, a quarter open): our Fine-Gray fit
(coefficients, robust variance, baseline), the logistic regression the mature-cohort
model runs (statsmodels ``Logit``, on every deal here, outcome won or not), and, when
``Rscript`` with cmprsk is installed, ``cmprsk::crr`` on a 5,000-deal subsample (its
variance loops over pairs of deals, O(n^2)) beside our fit on the same subsample. Then the
report's two drivers models on the sample dataset's deals (21 design columns with the default
covariates): `competing_drivers` (every deal) and `win_drivers` (the mature cohort, with its
cross-validation and calibration).

Run: ``.venv/bin/python benchmarks/bench_finegray.py [n_deals] [--skip-reference]``
"""
from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from workbench.seeds import seeded_rng
from workbench.stats.finegray import fit_fine_gray

COLUMNS = 20
SUBSAMPLE = 5_000


def simulate(n: int):
    """Deals from a Fine-Gray model: 10 0/1 columns and 10 standard normal ones, small effects."""
    rng = seeded_rng("bench_finegray")
    X = np.hstack([(rng.random((n, COLUMNS // 2)) < 0.3), rng.standard_normal((n, COLUMNS - COLUMNS // 2))])
    X = X.astype(float)
    beta = rng.uniform(-0.3, 0.3, COLUMNS)
    risk = np.exp(X @ beta)
    win_prob = 1 - 0.5**risk
    won = rng.random(n) < win_prob
    t_win = -60 * np.log(1 - (1 - (1 - rng.random(n) * win_prob) ** (1 / risk)) / 0.5)
    event = np.where(won, t_win, rng.exponential(80, n))
    age = rng.uniform(0, 365, n)
    status = np.where(event <= age, np.where(won, 1, 2), 0)
    return np.ceil(np.minimum(event, age)), status, X


def _timed(label, fn):
    start = time.perf_counter()
    value = fn()
    elapsed = time.perf_counter() - start
    print(f"  {label:<52} {elapsed:8.2f} s")
    return value, elapsed


def _crr(t, status, X) -> float | None:
    """Seconds R's crr takes on these deals (the Rscript's own timing), or None without R."""
    if shutil.which("Rscript") is None:
        return None
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "deals.csv"
        np.savetxt(path, np.column_stack([t, status, X]), delimiter=",")
        script = ("suppressMessages(library(cmprsk)); d <- as.matrix(read.csv(commandArgs(TRUE)[1], header = FALSE)); "
                  "cat(system.time(crr(d[, 1], d[, 2], d[, -(1:2)]))[['elapsed']])")
        done = subprocess.run(["Rscript", "-e", script, str(path)], capture_output=True, text=True)
        return float(done.stdout.strip()) if done.returncode == 0 else None


def main(n_deals: int = 100_000, reference: bool = True) -> dict:
    import statsmodels.api as sm

    t, status, X = simulate(n_deals)
    print(f"{n_deals:,} deals ({(status == 0).mean():.0%} open, {(status == 1).mean():.0%} won, "
          f"{len(np.unique(t)):,} distinct days), {X.shape[1]} columns")
    fit, fine_gray = _timed("Fine-Gray, robust variance (workbench)", lambda: fit_fine_gray(t, status, X))
    print(f"    {fit.iterations} Newton steps, converged: {fit.converged}")
    design = sm.add_constant(X)
    won = (status == 1).astype(float)
    _, logistic = _timed("logistic regression (statsmodels Logit)",
                         lambda: sm.Logit(won, design, missing="raise").fit(disp=0))
    out = {"fine_gray_s": fine_gray, "logistic_s": logistic}
    if reference:
        rows = seeded_rng("bench_finegray subsample").choice(n_deals, SUBSAMPLE, replace=False)
        _, ours = _timed(f"Fine-Gray on {SUBSAMPLE:,} deals (workbench)",
                         lambda: fit_fine_gray(t[rows], status[rows], X[rows]))
        seconds = _crr(t[rows], status[rows], X[rows])
        if seconds is None:
            print("  cmprsk::crr: Rscript with cmprsk not found, skipped")
        else:
            print(f"  {'cmprsk::crr on the same ' + format(SUBSAMPLE, ',') + ' deals (R)':<52} {seconds:8.2f} s"
                  f"   ({seconds / ours:,.0f} x ours)")
        out.update(subsample_s=ours, crr_s=seconds)
    out.update(_drivers(n_deals))
    return out


def _drivers(n_deals: int) -> dict:
    import warnings

    from workbench.dataset.sample import generate
    from workbench.drivers.competing import competing_drivers
    from workbench.drivers.model import win_drivers

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = generate(n_deals=n_deals, seed="bench_finegray", truth_deals=1_000).dataset()
        print(f"the sample dataset, {n_deals:,} deals")
        fine_gray, competing = _timed("competing_drivers: Fine-Gray on every deal",
                                      lambda: competing_drivers(dataset))
        logistic, mature = _timed("win_drivers: logistic on the 365-day mature cohort",
                                  lambda: win_drivers(dataset, mature_days=365))
    print(f"    Fine-Gray: {fine_gray.n:,} deals, {len(fine_gray.table)} columns; logistic: {logistic.n:,} deals, "
          f"{len(logistic.table)} columns")
    return {"competing_drivers_s": competing, "win_drivers_s": mature}


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    main(int(args[0]) if args else 100_000, reference="--skip-reference" not in sys.argv)
