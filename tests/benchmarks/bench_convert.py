"""Rule conversion and fixture benchmark (not a test): a table of ours vs the anchor, as ratios.

- Converting 3,000 rules (variants of the shipped pack's plain rules, each with a fresh id):
  ``soar rules convert`` cold (empty compile cache) and warm (cache filled) against
  ``sigma convert -t lucene -p ecs_linux.yml -f dsl_lucene`` on the same files. Both run as
  processes, so both pay their start-up. Goals: cold ≤ 1.2× sigma-cli, warm ≥ 20× faster than cold.
  (Correlation rules are left out: sigma-cli's Lucene target cannot convert them.)
- The whole pack's fixtures on real Elasticsearch (one throwaway index, one bulk load, one
  ``_msearch``): goal ≤ 60 s on 2 cores. The embedded engine is shown beside it.

Run: ``python -m tests.benchmarks.bench_convert [N]`` (needs ``scripts/services.sh up es`` for the last rows).
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from soar.config import load_settings
from soar.detection import load_rules, run_fixture_tests
from soar.detection.pipelines import ecs_linux_yaml_path

REPO = Path(__file__).resolve().parents[2]
REPEAT = 3
BIN = Path(sys.executable).parent


def make_variants(out: Path, count: int) -> int:
    """``count`` rule files: the pack's plain rules again and again, each copy with a new id and title."""
    sources = [
        p
        for p in sorted((REPO / "rules").rglob("*.yml"))
        if not p.name.endswith(".tests.yml") and "correlation:" not in p.read_text()
    ]
    if not sources:
        raise SystemExit("no rules in rules/ to make variants of")
    for n in range(count):
        src = sources[n % len(sources)]
        text = src.read_text()
        lines = []
        for line in text.splitlines():
            if line.startswith("id: "):
                line = f"id: {uuid.uuid4()}"
            elif line.startswith("title: "):
                line = f"{line} (variant {n})"
            elif line.startswith("name: "):
                line = f"{line}_{n}"
            lines.append(line)
        (out / f"{n:05}_{src.name}").write_text("\n".join(lines) + "\n")
    return len(sources)


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the process): CPU time is what a busy shared machine distorts least."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed: {proc.stderr[-2000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def best(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return min(r[0] for r in runs), min(r[1] for r in runs)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    count = int(args[0]) if args else 3000
    rows: list[tuple[str, str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rules = Path(tmp) / "rules"
        rules.mkdir()
        distinct = make_variants(rules, count)
        env = {k: v for k, v in os.environ.items() if not k.startswith("SOAR_")}
        sigma_cmd = [
            str(BIN / "sigma"),
            "convert",
            "-t",
            "lucene",
            "-p",
            str(ecs_linux_yaml_path()),
            "-f",
            "dsl_lucene",
            str(rules),
        ]
        soar = [str(BIN / "soar"), "rules", "convert", str(rules), "--json"]
        runs: dict[str, list[tuple[float, float]]] = {"sigma": [], "cold": [], "warm": [], "none": []}
        for n in range(REPEAT):  # interleaved, best of REPEAT: the machine is shared
            runs["sigma"].append(timed(sigma_cmd, env))
            env["SOAR_STATE_DIR"] = str(Path(tmp) / f"state{n}")
            runs["cold"].append(timed(soar, env))
            runs["warm"].append(timed(soar, env))
            runs["none"].append(timed([*soar, "--no-cache"], env))
        (sigma, sigma_cpu), (cold, cold_cpu) = best(runs["sigma"]), best(runs["cold"])
        (warm, warm_cpu), (uncached, uncached_cpu) = best(runs["warm"]), best(runs["none"])
        anchor = f"convert {count} rules ({distinct} distinct), sigma-cli"
        rows.append((anchor, f"{sigma:.2f} s / {sigma_cpu:.2f} s", "1.00 / 1.00", "anchor"))
        rows.append(
            (
                "soar rules convert, cold cache",
                f"{cold:.2f} s / {cold_cpu:.2f} s",
                f"{cold / sigma:.2f} / {cold_cpu / sigma_cpu:.2f}",
                "≤ 1.20 × sigma-cli",
            )
        )
        rows.append(
            (
                "soar rules convert, no cache",
                f"{uncached:.2f} s / {uncached_cpu:.2f} s",
                f"{uncached / sigma:.2f} / {uncached_cpu / sigma_cpu:.2f}",
                "-",
            )
        )
        rows.append(
            (
                "soar rules convert, warm cache",
                f"{warm:.2f} s / {warm_cpu:.2f} s",
                f"{cold / warm:.1f}× / {cold_cpu / warm_cpu:.1f}× faster",
                "≥ 20× faster than cold",
            )
        )
        start_up = best([timed([str(BIN / "soar"), "version"], env) for _ in range(REPEAT)])
        rows.append(("soar version (CLI start-up alone)", f"{start_up[0]:.2f} s / {start_up[1]:.2f} s", "-", "-"))
        # The same in one process: the cache's own effect, without the CLI's start-up (imports of every group).
        from soar.detection import CompileCache, convert_paths

        cache = CompileCache(Path(tmp) / "inproc-cache")
        start = time.perf_counter()
        convert_paths([rules], cache=cache)
        cold_in = time.perf_counter() - start
        start = time.perf_counter()
        hits = convert_paths([rules], cache=cache).cache_hits
        warm_in = time.perf_counter() - start
        rows.append(("convert_paths in-process, cold cache", f"{cold_in:.2f} s", f"{cold_in / sigma:.2f}", "-"))
        rows.append(
            (
                f"convert_paths in-process, warm ({hits} hits)",
                f"{warm_in:.2f} s",
                f"{cold_in / warm_in:.1f}× faster",
                "≥ 20× faster",
            )
        )

    ruleset = load_rules([REPO / "rules"])
    start = time.perf_counter()
    results = run_fixture_tests(ruleset, engine="embedded")
    embedded = time.perf_counter() - start
    rows.append((f"pack fixtures, embedded ({len(results)} rules)", f"{embedded:.2f} s", "-", "-"))
    try:
        from soar.connections import check_elasticsearch, elasticsearch_client

        settings = load_settings()
        check_elasticsearch(settings)
        es = elasticsearch_client(settings, request_timeout=120)
        start = time.perf_counter()
        results = run_fixture_tests(ruleset, engine="elasticsearch", es=es, index_prefix="soar-bench-fixtures")
        on_es = time.perf_counter() - start
        passed = sum(r.passed for r in results)
        rows.append(
            (
                f"pack fixtures, Elasticsearch ({passed}/{len(results)} pass)",
                f"{on_es:.2f} s",
                f"{on_es / 60:.2f} of 60 s",
                "≤ 60 s",
            )
        )
        es.close()
    except Exception as exc:  # the table still prints without Elasticsearch
        rows.append(("pack fixtures, Elasticsearch", f"unavailable: {exc}", "-", "≤ 60 s"))

    head = ("measure", "wall / CPU (best of 3)", "ratio (wall / CPU)", "goal")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(4)]
    for row in [head, tuple("-" * w for w in widths), *rows]:
        print("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
