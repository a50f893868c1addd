"""Time `workbench.dataset.sample.generate` on one million deals; print seconds and peak memory.

Run: ``PYTHONPATH=src python benchmarks/bench_sample.py [n_deals]``.
"""
from __future__ import annotations

import resource
import sys
import time

from workbench.dataset.sample import generate


def main(n_deals: int = 1_000_000) -> dict:
    """Generate ``n_deals`` deals (with the default 200,000-deal truth) and report the cost."""
    start = time.perf_counter()
    s = generate(n_deals=n_deals)
    seconds = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux (bytes on macOS).
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 1024**2 if sys.platform == "darwin" else peak / 1024
    result = {"n_deals": n_deals, "seconds": round(seconds, 2), "peak_mb": round(peak_mb),
              "stage_history_rows": len(s.stage_history), "touchpoint_rows": len(s.touchpoints),
              "contact_rows": len(s.contacts)}
    print(", ".join(f"{k}={v}" for k, v in result.items()))
    return result


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)
