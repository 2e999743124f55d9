"""SigmaHQ's community Linux rules as published (benchmark, not a test): what each target does with them.

The 210 rules of ``tests/data/sigmahq/rules/linux`` (SigmaHQ commit in its README) go through
``soar rules check``'s validators and through every compile target and export format. Printed: per
target, rules compiled / refused with a reason at their line / crashed (any error that is not one of
soar's own, i.e. an internal error — goal 0), the most common refusal reasons, and the check's
clean / warning-only / failing rule counts. No timing is asserted.

Run: ``python -m tests.benchmarks.bench_sigmahq``.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from pathlib import Path

from soar.errors import SoarError

REPO = Path(__file__).resolve().parents[2]
COMMUNITY = REPO / "tests" / "data" / "sigmahq" / "rules" / "linux"
TARGETS = ("elasticsearch", "embedded", "lucene")
EXPORTS = ("kibana-ndjson", "elastalert", "esql", "eql")


def _shape(message: str) -> str:
    """A reason without its particulars (quoted names, numbers), so refusals group."""
    return re.sub(r"'[^']*'|\b\d+\b", "…", message)[:110]


def main(argv: list[str]) -> int:
    from soar.detection import compile_rules, export_rules, load_rules
    from soar.detection._validate import check_rules

    ruleset = load_rules([COMMUNITY])
    rules = [r for r in ruleset.rules if r.kind == "rule"]
    print(f"SigmaHQ rules/linux: {len(ruleset.rules)} loaded, {len(ruleset.errors)} load errors\n")
    rows: list[tuple[str, int, int, int, Counter[str]]] = []
    for target in TARGETS:
        refused: Counter[str] = Counter()
        crashed = 0
        try:
            compiled, errors = compile_rules(ruleset, target)
        except Exception as exc:  # the whole target failing is a crash of every rule
            print(f"{target}: crashed: {type(exc).__name__}: {exc}")
            rows.append((target, 0, 0, len(rules), Counter()))
            continue
        for e in errors:
            if isinstance(e, SoarError):
                refused[_shape(e.message)] += 1
            else:
                crashed += 1
        rows.append((target, len(compiled), sum(refused.values()), crashed, refused))
    for fmt in EXPORTS:
        refused = Counter()
        crashed = 0
        exported = 0
        for rule in rules:  # one at a time: a crash names its rule and never hides the others
            try:
                text, errors = export_rules([rule], fmt)
            except Exception as exc:
                crashed += 1
                print(f"{fmt}: crashed on {rule.path.name}: {type(exc).__name__}: {exc}")
                continue
            if errors:
                refused[_shape(errors[0].message)] += 1
            elif text.strip():
                exported += 1
        rows.append((f"export {fmt}", exported, sum(refused.values()), crashed, refused))

    print(f"{'target':24} {'compiled':>9} {'refused':>8} {'crashed':>8}  goal: 0 crashed, every refusal at its line")
    for name, ok, no, crash, _ in rows:
        print(f"{name:24} {ok:9d} {no:8d} {crash:8d}  {'met' if crash == 0 else 'MISSED'}")
    print("\nmost common refusal reasons (elasticsearch):")
    for reason, n in rows[0][4].most_common(6):
        print(f"{n:5d}  {reason}")

    problems = check_rules(ruleset)
    by_rule: dict[str, set[str]] = {}
    for p in problems:
        by_rule.setdefault(p.file, set()).add(p.severity)
    failing = sum("error" in s for s in by_rule.values())
    warned = sum(s == {"warning"} for s in by_rule.values())
    clean = len(ruleset.rules) - len(by_rule)
    print(
        f"\nrules check (validators only, without compile): {clean} clean, {warned} with warnings only, "
        f"{failing} with errors"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
