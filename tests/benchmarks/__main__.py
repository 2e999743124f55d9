"""Run the benchmarks: ``python -m tests.benchmarks [NAME ...]`` (``make bench``).

Each ``bench_*.py`` prints its own table, ours beside its anchor as ratios. They
are measurements, never pass/fail tests; a benchmark that cannot run says why and
the others still run.
"""

from __future__ import annotations

import importlib
import sys
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem for p in HERE.glob("bench_*.py"))
    failed = []
    for name in names:
        module_name = name if name.startswith("bench_") else f"bench_{name}"
        print(f"\n=== {module_name} ===", flush=True)
        t0 = time.perf_counter()
        try:
            module = importlib.import_module(f"tests.benchmarks.{module_name}")
            main_fn = module.main
            rc = main_fn([]) if main_fn.__code__.co_argcount else main_fn()
        except Exception:
            traceback.print_exc()
            rc = 1
        if rc:
            failed.append(module_name)
        print(f"--- {module_name}: {time.perf_counter() - t0:.1f} s", flush=True)
    if failed:
        print(f"\nbenchmarks that could not complete: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
