"""Stage reach, conversion, transition matrix and path variants on ~10 million stage-history rows.

`generate(1_000_000)` gives about 3.4 million history rows, so the 10-million-row history
is the sample's deals replicated with new ids (``D0000001~1``, ``D0000001~2``, ...) until
there are at least ``rows`` rows: 3 copies, 3 million deals. Copies keep every deal's
attributes and dates; only the ids differ, so the work per row is that of real data. The
dataset is assembled directly as a `Dataset` (the tables come from a validated one), so
what is timed is the analyses, not the loader.

Then the same four analyses the naive pandas way (one ``groupby(...).apply`` per deal, and
lifelines' Aalen-Johansen for the conversion) on a subsample of deals, extrapolated
linearly to the full size (groupby-apply is linear in the number of deals), and the
outputs compared with ours on that subsample.

Run: ``.venv/bin/python benchmarks/bench_funnel.py [rows] [--naive-deals N]``.
"""
from __future__ import annotations

import math
import resource
import sys
import time
import tracemalloc
import warnings
from dataclasses import replace

import numpy as np
import pandas as pd

from workbench.exceptions import DataQualityWarning
from workbench.funnel.conversion import stage_conversion, stage_reach
from workbench.dataset.history import history
from workbench.funnel.routes import path_variants
from workbench.dataset.sample import generate
from workbench.funnel.transitions import transition_matrix

BASE_DEALS = 1_000_000


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _rss_gb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024**2
    return float("nan")


def replicate(dataset, copies: int):
    """``copies`` copies of every deal and its history, with new ids; history grouped by deal."""
    deals, hist = dataset.deals, dataset.stage_history
    n = len(deals)
    base = deals["deal_id"].to_numpy()
    ids = np.concatenate([base] + [np.array([f"{d}~{r}" for d in base], dtype=object) for r in range(1, copies)])
    code = pd.Index(base).get_indexer(hist["deal_id"].to_numpy())
    new_deals = pd.concat([deals] * copies, ignore_index=True)
    new_deals["deal_id"] = ids
    new_hist = pd.DataFrame({
        "deal_id": np.concatenate([ids[code + r * n] for r in range(copies)]),
        "stage": np.concatenate([hist["stage"].to_numpy()] * copies),
        "entered_at": np.concatenate([hist["entered_at"].to_numpy()] * copies),
    })
    return replace(dataset, deals=new_deals, stage_history=new_hist, name=f"{dataset.name} x{copies}")


def _timed(label, fn, results):
    start = time.perf_counter()
    value = fn()
    results[label] = time.perf_counter() - start
    print(f"  {label:<52} {results[label]:8.2f} s")
    return value


# --- the naive way: one Python call per deal -------------------------------------------

def naive(dataset) -> dict:
    """Reach, transition counts, route counts and eventual conversion, one groupby-apply per deal."""
    stages = list(dataset.stages)
    rank = {s: i for i, s in enumerate(stages)} | {s: len(stages) for s in dataset.won_stages} | \
        {s: len(stages) + 1 for s in dataset.lost_stages}
    h = dataset.stage_history.assign(state=lambda f: f["stage"].map(rank))
    h = h.sort_values(["deal_id", "entered_at", "state"], kind="stable")
    deals = dataset.deals.set_index("deal_id")
    k = len(stages)
    out = {}
    t = time.perf_counter()
    furthest = h.groupby("deal_id")["state"].apply(lambda s: max([x for x in s if x <= k], default=-1))
    out["reach"] = {st: int((furthest >= i).sum()) for i, st in enumerate(stages)}
    out["t_reach"] = time.perf_counter() - t

    t = time.perf_counter()
    pairs = h.groupby("deal_id")["stage"].apply(lambda s: list(zip(s.iloc[:-1], s.iloc[1:])))
    out["matrix"] = pd.Series([p for ps in pairs for p in ps]).value_counts()
    out["t_matrix"] = time.perf_counter() - t

    t = time.perf_counter()

    def route(s):
        seq = [x for x in s if x in stages]
        return " > ".join(x for i, x in enumerate(seq) if i == 0 or x != seq[i - 1])

    routes = h.groupby("deal_id")["stage"].apply(route)
    closed = deals["outcome"].reindex(routes.index) != "open"
    out["routes"] = routes[closed].value_counts()
    out["t_routes"] = time.perf_counter() - t

    t = time.perf_counter()
    as_of = dataset.as_of

    def outcomes(g):
        rows = []
        state, time_ = g["state"].to_numpy(), g["entered_at"].to_numpy()
        deal = deals.loc[g.name]
        for a in range(k):
            at = np.flatnonzero(state == a)
            if not len(at):
                continue
            later = np.flatnonzero((state > a) & (state <= k) & (np.arange(len(state)) > at[0]))
            if len(later):
                rows.append((a, (time_[later[0]] - time_[at[0]]) / np.timedelta64(1, "D"), 1))
            elif deal["outcome"] == "lost":
                rows.append((a, (deal["closed_at"] - time_[at[0]]) / pd.Timedelta(days=1), 2))
            else:
                rows.append((a, (as_of - time_[at[0]]) / pd.Timedelta(days=1), 0))
        return rows

    per_deal = h.groupby("deal_id")[["state", "entered_at"]].apply(outcomes)
    frame = pd.DataFrame([r for rs in per_deal for r in rs], columns=["stage", "days", "event"])
    from lifelines import AalenJohansenFitter

    conversion = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for a, part in frame.groupby("stage"):
            fit = AalenJohansenFitter(seed=0).fit(part["days"], part["event"], event_of_interest=1)
            conversion[stages[a]] = float(fit.cumulative_density_.iloc[-1, 0])
    out["conversion"] = conversion
    out["t_conversion"] = time.perf_counter() - t
    return out


def main(rows: int = 10_000_000, naive_deals: int = 30_000) -> dict:
    warnings.simplefilter("ignore", DataQualityWarning)
    start = time.perf_counter()
    base = generate(n_deals=BASE_DEALS, seed="benchmark", truth_deals=1000).dataset()
    copies = max(1, math.ceil(rows / len(base.stage_history)))
    dataset = replicate(base, copies)
    del base
    print(f"{len(dataset.stage_history):,} stage-history rows, {len(dataset.deals):,} deals: generate({BASE_DEALS:,}) "
          f"gave {len(dataset.stage_history) // copies:,} rows, replicated x{copies} with new ids; "
          f"ready in {time.perf_counter() - start:.0f} s, process RSS {_rss_gb():.2f} GB")
    r: dict = {}
    print("workbench (vectorized)")
    rss_before, peak_before = _rss_gb(), _peak_gb()
    _timed("clean history (sort check, dedupe, closing rows)", lambda: history(dataset), r)
    _timed("stage reach", lambda: stage_reach(dataset), r)
    _timed("eventual conversion (Aalen-Johansen, 5 transitions)", lambda: stage_conversion(dataset), r)
    _timed("transition matrix", lambda: transition_matrix(dataset), r)
    _timed("path variants (exact routes, top 10)", lambda: path_variants(dataset), r)
    total = sum(r.values())
    print(f"  {'total':<52} {total:8.2f} s   (bar: < 15 s)")
    print(f"  memory: RSS {rss_before:.2f} GB with the data loaded; process peak {peak_before:.2f} GB before the "
          f"analyses (generating the sample), {_peak_gb():.2f} GB after them (bar: < 4 GB)")

    # The same analyses again under tracemalloc (numpy reports its buffers to it), on a fresh copy of the
    # dataset object so that the cleaned history is rebuilt: the memory the analyses allocate on top of the data.
    fresh = replace(dataset)
    tracemalloc.start()
    for fn in (history, stage_reach, stage_conversion, transition_matrix, path_variants):
        fn(fresh)
    traced = tracemalloc.get_traced_memory()[1] / 1024**3
    tracemalloc.stop()
    del fresh
    print(f"  memory allocated by the analyses at their peak (tracemalloc, cleaned history included): {traced:.2f} GB "
          f"-> data + analyses ~{rss_before + traced:.2f} GB")

    ids = dataset.deals["deal_id"].to_numpy()[:naive_deals]
    sub = dataset.filter({"deal_id": list(ids)})
    print(f"naive pandas (groupby-apply per deal) on the first {naive_deals:,} deals "
          f"({len(sub.stage_history):,} rows), extrapolated x{len(dataset.deals) / naive_deals:,.0f}")
    ref = naive(sub)
    factor = len(dataset.deals) / naive_deals
    ours = {"t_reach": r["stage reach"], "t_matrix": r["transition matrix"],
            "t_routes": r["path variants (exact routes, top 10)"],
            "t_conversion": r["eventual conversion (Aalen-Johansen, 5 transitions)"]}
    for key, label in (("t_reach", "stage reach"), ("t_conversion", "eventual conversion"),
                       ("t_matrix", "transition matrix"), ("t_routes", "path variants")):
        full = ref[key] * factor
        print(f"  {label:<30} naive {ref[key]:6.2f} s on the subsample -> ~{full:7.0f} s at full size; "
              f"workbench {ours[key]:.2f} s ({full / ours[key]:,.0f}x)")
    naive_total = sum(ref[k] for k in ours) * factor
    print(f"  total: naive ~{naive_total:,.0f} s vs workbench {sum(ours.values()):.1f} s "
          f"(+ {r['clean history (sort check, dedupe, closing rows)']:.1f} s shared cleaning)")
    # Same answers on the subsample.
    reach = stage_reach(sub).table.set_index("stage")["reached"].to_dict()
    tm = transition_matrix(sub).table
    pairs = tm[tm["moves"] > 0].set_index(["from", "to"])["moves"]
    pairs.index = [(str(a), str(b)) for a, b in pairs.index]
    pv = path_variants(sub, top=5).table.set_index("route")
    closed = pv["won"] + pv["lost"]
    conv = stage_conversion(sub).table.set_index("transition")["conversion"]
    print("  same answers on the subsample: reach", reach == ref["reach"],
          "| transition counts", pairs.sort_index().equals(ref["matrix"].sort_index().astype(pairs.dtype)),
          "| top routes", all(closed.get(k) == v for k, v in ref["routes"].head(5).items()),
          f"| conversion max |diff| vs lifelines (jittered ties) "
          f"{max(abs(c - ref['conversion'][s]) for c, s in zip(conv, sub.stages)):.4f}")
    return r


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n_naive = 30_000
    if "--naive-deals" in sys.argv:
        n_naive = int(sys.argv[sys.argv.index("--naive-deals") + 1])
        args = [a for a in args if a != str(n_naive)]
    main(int(args[0]) if args else 10_000_000, naive_deals=n_naive)
