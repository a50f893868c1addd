"""The journey builder on 1,000,000 deals: start-up, switching persona, and the naive way.

The builder computes every persona's facts in one pass when it starts (`journey_facts` with
``by="persona"``), so switching persona is a lookup, a prefill on first visit and a render.
The naive way recomputes the persona's facts from its deals at every switch
(`persona_facts`, i.e. `journey_facts` on ``dataset.filter(...)``): timed on the same data
in the same run, and its numbers checked equal to the precomputed ones.

Run: ``.venv/bin/python benchmarks/bench_journey.py [deals]``.
"""
from __future__ import annotations

import resource
import statistics
import sys
import time
import warnings

from numpy.testing import assert_allclose

from workbench.journey.facts import persona_facts
from workbench.dataset.sample import generate
from workbench.journey.builder import JourneyBuilder


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def main(n_deals: int = 1_000_000) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        t = time.perf_counter()
        dataset = generate(n_deals=n_deals, seed="bench-journey", truth_deals=1_000).dataset()
        print(f"data: {len(dataset.deals):,} deals, {len(dataset.stage_history):,} stage entries, "
              f"{len(dataset.touchpoints):,} touchpoints, {len(dataset.contacts):,} contacts "
              f"({time.perf_counter() - t:.1f} s to generate)")

        t = time.perf_counter()
        builder = JourneyBuilder(dataset)
        start = time.perf_counter() - t
        print(f"builder start-up (facts for all {len(builder.personas)} personas in one pass, first render): "
              f"{start:.2f} s")

        personas = list(builder.personas)[1:]
        first, again = [], []
        for rounds, times in ((1, first), (2, again)):
            for name in personas * rounds:
                t = time.perf_counter()
                builder.persona.value = name
                times.append(time.perf_counter() - t)
                assert f"{int((dataset.deals['persona'] == name).sum()):,} deals reached" in builder.preview.value
            builder.persona.value = "All deals"
        print(f"switch persona, first visit (prefill + editors + render): mean {statistics.mean(first):.3f} s, "
              f"max {max(first):.3f} s over {len(first)} switches")
        print(f"switch persona, later visits: mean {statistics.mean(again):.3f} s, max {max(again):.3f} s "
              f"over {len(again)} switches")

        naive = []
        for name in personas[:2]:
            t = time.perf_counter()
            facts = persona_facts(dataset, builder.layout, builder.personas[name])
            naive.append(time.perf_counter() - t)
            ours = builder.facts.persona(name).stages
            assert_allclose(facts.stages["conversion"].to_numpy(float), ours["conversion"].to_numpy(float), rtol=1e-12)
            assert_allclose(facts.stages["median_days"].to_numpy(float), ours["median_days"].to_numpy(float))
        print(f"naive switch (recompute the persona's facts from its deals): mean {statistics.mean(naive):.2f} s "
              f"over {len(naive)} switches, same numbers")
        print(f"speed-up of a switch: {statistics.mean(naive) / statistics.mean(first):.0f}x (first visit), "
              f"{statistics.mean(naive) / statistics.mean(again):.0f}x (later)")

        t = time.perf_counter()
        builder.edit("merge_stages", builder.layout.stage_labels()[0])
        print(f"merge two stages (recomputes every persona's facts): {time.perf_counter() - t:.2f} s")
        print(f"peak memory: {_peak_gb():.2f} GB (process, data generation included)")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
