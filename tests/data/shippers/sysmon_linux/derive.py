#!/usr/bin/env python3
"""Turn a Sysmon for Linux syslog line into the document Elastic Agent's sysmon_linux integration indexes.

A transcription, step by step, of the two published stages that shape the fields, because our test
Elasticsearch has no ingest-common module and cannot run the real pipeline:

1. the agent: the filestream input of the integration and its processors
   (``agent()``, from ``filestream.yml.hbs`` and the Beats processors it names), then what the agent
   and Fleet add to every document of that data stream (``ENVELOPE``, from the integration's real
   ``sample_event.json`` of the same log file);
2. the ingest pipeline ``default.yml`` (``ingest()``).

Nothing is invented: every field and value comes from a step cited beside it, by repository, path and
commit (``SOURCES``). Steps that can only fire on fields Sysmon for Linux does not write in the records
derived here (hashes, registry, DNS, image loads, pipes, process access) are not transcribed;
``ingest()`` refuses a record that carries one of those fields rather than silently skipping a step.

Proof: ``tests/unit/detection/test_sysmon_linux_derivation.py`` runs ``ingest()`` on the package's
pipeline-test input and compares the result field by field with the package's expected output
(``pipeline_test/``). ``python3 derive.py LINE [Name=value ...]`` prints the document of one line of
``sysmon.log`` (optionally with the values of some ``<Data Name=...>`` elements replaced). Stdlib only.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import ipaddress
import json
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

HERE = Path(__file__).resolve().parent
LOG = HERE / "sysmon.log"

INTEGRATIONS = "elastic/integrations"
BEATS = "elastic/beats"
# name -> (repository, path, commit) of everything transcribed or copied here.
SOURCES: dict[str, tuple[str, str, str]] = {
    "log": (
        INTEGRATIONS,
        "packages/sysmon_linux/_dev/deploy/docker/sample_logs/sysmon.log",
        "c81e9fe78b8c969e7b96b4a6486e10b6a9fc3d94",
    ),
    "processors": (
        INTEGRATIONS,
        "packages/sysmon_linux/data_stream/log/agent/stream/filestream.yml.hbs",
        "c81e9fe78b8c969e7b96b4a6486e10b6a9fc3d94",
    ),
    "pipeline": (
        INTEGRATIONS,
        "packages/sysmon_linux/data_stream/log/elasticsearch/ingest_pipeline/default.yml",
        "15273582b4c2c08650f6dbcad9479b33488a2b14",
    ),
    "envelope": (
        INTEGRATIONS,
        "packages/sysmon_linux/data_stream/log/sample_event.json",
        "22a4ca114b59975079516cdaa387c60106b873bc",
    ),
    "syslog_processor": (BEATS, "libbeat/processors/syslog/syslog.go", "5b700f2eca6614091ccb2697f72f4a3ac1c958e7"),
    "syslog_message": (BEATS, "libbeat/reader/syslog/message.go", "69ff683809c0bb11ebe9d95afbd24d702f5cc79c"),
    "decode_xml_wineventlog": (
        BEATS,
        "libbeat/processors/decode_xml_wineventlog/processor.go",
        "c2281feb5db921a398f0bb1ee4c46547a95a05a4",
    ),
    "decode_xml_wineventlog_config": (
        BEATS,
        "libbeat/processors/decode_xml_wineventlog/config.go",
        "cfcb4f11ed8d7d791eaf418402927f812c342a78",
    ),
    "decode_xml_wineventlog_decoder": (
        BEATS,
        "libbeat/processors/decode_xml_wineventlog/decoder.go",
        "79c83984b5259f7f3d20ba65031de96781541745",
    ),
    "winevent_event": (BEATS, "winlogbeat/sys/winevent/event.go", "57572937a401047fe3168de4c5a27cef1e5fab07"),
    "winevent_maputil": (BEATS, "winlogbeat/sys/winevent/maputil.go", "79c83984b5259f7f3d20ba65031de96781541745"),
    "winevent_winmeta": (BEATS, "winlogbeat/sys/winevent/winmeta.go", "d67ddf2f1020f533044c81f358ee11c49b2a7734"),
    "winevent_sid": (BEATS, "winlogbeat/sys/winevent/sid.go", "97e80f1a4025ec7dea7a86fd74fd270c134498f2"),
}
# default.yml @ 15273582: `set ecs.version '8.17.0'` (the one step whose value differs between the
# pipeline's versions; the pipeline test's expected output @ 410bb784 says 8.5.0).
PIPELINE_ECS_VERSION = "8.17.0"

# What the agent and Fleet add to every document of the data stream, copied from the real
# sample_event.json (agent 8.10.2 reading this very sysmon.log at /tmp/service_logs/sysmon.log in the
# package's system test; its document is the log's line 1). add_host_metadata and the agent's
# metadata run after the input's processors and overwrite host.* (host.name, host.hostname);
# event.agent_id_status and event.ingested are Fleet's final pipeline's. Per-line values
# (@timestamp, log.offset, message, process.*) are not copied: they are derived below.
ENVELOPE: dict[str, Any] = {
    "agent": {
        "ephemeral_id": "9a76eca2-a433-4b6f-a30b-bac6e6d09995",
        "id": "9f4e1395-4b95-476b-8057-130127354b7a",
        "name": "docker-fleet-agent",
        "type": "filebeat",
        "version": "8.10.2",
    },
    "data_stream": {"dataset": "sysmon_linux.log", "namespace": "ep", "type": "logs"},
    "elastic_agent": {"id": "9f4e1395-4b95-476b-8057-130127354b7a", "snapshot": False, "version": "8.10.2"},
    "event": {"agent_id_status": "verified", "dataset": "sysmon_linux.log", "ingested": "2023-10-03T10:35:51Z"},
    "host": {
        "architecture": "x86_64",
        "containerized": True,
        "hostname": "docker-fleet-agent",
        "id": "efe661d97f0c4d9883075c393da6b0d8",
        "ip": ["192.168.48.7"],
        "mac": ["02-42-C0-A8-30-07"],
        "name": "docker-fleet-agent",
        "os": {
            "codename": "focal",
            "family": "debian",
            "kernel": "5.15.90.1-microsoft-standard-WSL2",
            "name": "Ubuntu",
            "platform": "ubuntu",
            "type": "linux",
            "version": "20.04.6 LTS (Focal Fossa)",
        },
    },
    "input": {"type": "filestream"},
    "log": {"file": {"device_id": 2080, "inode": 91045, "path": "/tmp/service_logs/sysmon.log"}},
}
# add_locale (filestream.yml.hbs) -> event.timezone; the sample's value.
TIMEZONE = "+00:00"
# The syslog processor gives a BSD timestamp the current year (message.go setTimestampBSD); the
# sample's run was in 2023 (its @timestamp 2023-10-24T17:05:31.000Z is line 1's "Oct 24 17:05:31").
RUN_YEAR = 2023

MONTHS = {
    m: i for i, m in enumerate(["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"], 1)
}
# RFC 3164 without PRI, as every line of the log: "Oct 24 17:05:38 host app[pid]: msg" / "host app: msg".
RFC3164 = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) +(?P<day>\d{1,2}) (?P<time>\d\d:\d\d:\d\d) (?P<host>\S+) "
    r"(?P<app>[^\s\[:]+)(?:\[(?P<pid>\d+)\])?: ?(?P<msg>.*)$"
)
EMPTY_EVENT_DATA = (None, "", "-", "{00000000-0000-0000-0000-000000000000}")


# --- dotted-path helpers (Elasticsearch ingest / Beats mapstr semantics) -------------------------


def get(doc: dict[str, Any], path: str) -> Any:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


def has(doc: dict[str, Any], path: str) -> bool:
    node: Any = doc
    for part in path.split("."):
        if not isinstance(node, dict) or part not in node:
            return False
        node = node[part]
    return True


def put(doc: dict[str, Any], path: str, value: Any) -> None:
    *parents, leaf = path.split(".")
    node = doc
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value


def pop(doc: dict[str, Any], path: str) -> Any:
    *parents, leaf = path.split(".")
    node: Any = doc
    for part in parents:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node.pop(leaf, None) if isinstance(node, dict) else None


def rename(doc: dict[str, Any], field: str, target: str) -> None:
    """Ingest ``rename`` with ignore_missing/ignore_failure: nothing if the field is missing or the target exists."""
    if has(doc, field) and not has(doc, target):
        put(doc, target, pop(doc, field))


def convert(doc: dict[str, Any], field: str, target: str, kind: str) -> None:
    """Ingest ``convert`` with ignore_missing/ignore_failure (the source field stays)."""
    value = get(doc, field)
    if value is None:
        return
    try:
        if kind == "long":
            converted: Any = int(str(value))
        elif kind == "string":
            converted = str(value)
        elif kind == "ip":
            ipaddress.ip_address(str(value))  # type ip: a valid address, kept as the string written
            converted = str(value)
        elif kind == "boolean":
            if str(value).lower() not in ("true", "false"):
                return
            converted = str(value).lower() == "true"
        else:
            raise ValueError(kind)
    except ValueError:
        return
    put(doc, target, converted)


def iso_millis(text: str) -> str:
    """Ingest ``date`` output (default output_format yyyy-MM-dd'T'HH:mm:ss.SSSXXX) of a UTC instant."""
    date, _, clock = text.rstrip("Z").replace(" ", "T").partition("T")
    whole, _, fraction = clock.partition(".")
    return f"{date}T{whole}.{(fraction + '000')[:3]}Z"


# --- 1. the agent: filestream input + processors of filestream.yml.hbs @ c81e9fe7 ---------------


def winlog_fields(xml_text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """decode_xml_wineventlog: ``(winlog, ecs)`` as ``fields(evt)`` in processor.go builds them.

    winevent.UnmarshalXML (event.go) reads the first element of the text, so the syslog header
    before ``<Event>`` is skipped; EnrichRawValuesWithNames(nil, ...) (decoder.go) then names the raw
    Level/Opcode/Task/Keywords with winmeta.go's defaultWinMeta.
    """
    # The stored test log only, never untrusted input.
    root = ET.fromstring(xml_text[xml_text.index("<Event") :])  # noqa: S314
    system = root.find("System")
    assert system is not None
    text = lambda tag: (system.findtext(tag) or "").strip()  # noqa: E731
    provider = system.find("Provider")
    assert provider is not None
    execution = system.find("Execution")
    win: dict[str, Any] = {}

    def add_optional(key: str, value: Any) -> None:  # maputil.go AddOptional: skip zero values
        if value not in (None, "", 0, []):
            put(win, key, value)

    add_optional("channel", text("Channel"))
    add_optional("event_id", str(int(text("EventID"))))  # fmt.Sprint(e.EventIdentifier.ID)
    add_optional("provider_name", provider.get("Name", ""))
    add_optional("record_id", int(text("EventRecordID") or 0))  # uint64
    # task: winmeta.go defaultWinMeta.Tasks names only 0 ("None"); Sysmon's tasks (1, 3, 5, ...) stay unnamed.
    task = {0: "None"}.get(int(text("Task") or 0), "")
    add_optional("task", task)
    add_optional("computer_name", text("Computer"))
    # keywords: 0x8000000000000000 matches none of defaultWinMeta.Keywords' masks -> none.
    opcode = {0: "Info", 1: "Start", 2: "Stop", 3: "DCStart", 4: "DCStop"}.get(int(text("Opcode") or 0), "")
    add_optional("opcode", opcode)
    add_optional("provider_guid", provider.get("Guid", ""))
    add_optional("version", int(text("Version") or 0))  # Version (uint8)
    time_created = system.find("TimeCreated")
    assert time_created is not None
    add_optional("time_created", time_created.get("SystemTime"))
    # level: defaultWinMeta.Levels, lower-cased by Fields().
    level = {0: "Information", 1: "Critical", 2: "Error", 3: "Warning", 4: "Information", 5: "Verbose"}
    add_optional("level", level.get(int(text("Level") or 0), "").lower())
    # user: SID reads the attribute "UserID" (sid.go); Sysmon for Linux writes <Security UserId="0"/>,
    # which encoding/xml does not match (attribute names are case-sensitive) -> no winlog.user.
    security = system.find("Security")
    if security is not None and security.get("UserID"):
        put(win, "user.identifier", security.get("UserID"))
    # event_data: AddPairs keeps non-empty values, first of duplicate keys, key = Name attribute.
    event_data: dict[str, str] = {}
    for data in root.iterfind("EventData/Data"):
        key, value = data.get("Name") or "", data.text or ""
        if value and key not in event_data:
            event_data[key] = value
    if event_data:
        win["event_data"] = event_data
    if execution is not None:
        add_optional("process.pid", int(execution.get("ProcessID") or 0))
        add_optional("process.thread.id", int(execution.get("ThreadID") or 0))

    ecs: dict[str, Any] = {}  # processor.go fields(): map_ecs_fields
    put(ecs, "event.code", win.get("event_id"))
    put(ecs, "event.kind", "event")
    put(ecs, "event.provider", provider.get("Name", ""))
    if task:
        put(ecs, "event.action", task)
    if text("Computer"):
        put(ecs, "host.name", text("Computer"))
    if win.get("level"):
        put(ecs, "log.level", win["level"])
    return win, ecs


def deep_update(target: dict[str, Any], source: dict[str, Any]) -> None:
    for key, value in source.items():
        if isinstance(value, dict) and isinstance(target.get(key), dict):
            deep_update(target[key], value)
        else:
            target[key] = copy.deepcopy(value)


def agent(line: str, offset: int) -> dict[str, Any]:
    """What the agent ships for one line of the log (before the ingest pipeline)."""
    # filestream: one event per line, the line (without its CR LF terminator) in `message`;
    # log.offset is the byte offset of the line in the file. No tags: preserve_original_event off.
    doc: dict[str, Any] = {"message": line, "log": {"offset": offset}}
    # - add_locale: ~                                   -> event.timezone
    put(doc, "event.timezone", TIMEZONE)
    # - rename: message -> event.original
    rename(doc, "message", "event.original")
    # - syslog: field event.original (message.go fields(): log.syslog.*, message, event.original;
    #   the timestamp becomes @timestamp). The real sample of a PRI-less line carries no event.severity
    #   or log.syslog.priority/facility; log.syslog.* is removed by the pipeline's cleanup.
    match = RFC3164.match(line)
    if match:
        put(doc, "log.syslog.hostname", match["host"])
        put(doc, "log.syslog.appname", match["app"])
        if match["pid"]:
            put(doc, "log.syslog.procid", match["pid"])
        if match["msg"].strip():
            doc["message"] = match["msg"].strip()
        hh, mm, ss = match["time"].split(":")
        doc["@timestamp"] = f"{RUN_YEAR}-{MONTHS[match['mon']]:02d}-{int(match['day']):02d}T{hh}:{mm}:{ss}.000Z"
    # - decode_xml_wineventlog: when message =~ ^<Event; field event.original; target winlog;
    #   map_ecs_fields: true; overwrite_keys defaults to true (config.go).
    if str(doc.get("message", "")).startswith("<Event"):
        win, ecs = winlog_fields(str(get(doc, "event.original")))
        doc["winlog"] = win
        deep_update(doc, ecs)
    # the agent's metadata and Fleet's final pipeline (ENVELOPE): overwrite host.*, add the rest.
    deep_update(doc, ENVELOPE)
    return doc


# --- 2. the ingest pipeline default.yml @ 15273582 -----------------------------------------------

CATEGORIES: dict[str, dict[str, list[str]]] = {  # "Add ECS categorization fields" script params
    "1": {"category": ["process"], "type": ["start"]},
    "2": {"category": ["file"], "type": ["change"]},
    "3": {"category": ["network"], "type": ["start", "connection", "protocol"]},
    "4": {"category": ["process"], "type": ["change"]},
    "5": {"category": ["process"], "type": ["end"]},
    "6": {"category": ["driver"], "type": ["start"]},
    "7": {"category": ["process"], "type": ["change"]},
    "10": {"category": ["process"], "type": ["access"]},
    "11": {"category": ["file"], "type": ["creation"]},
    "12": {"category": ["configuration", "registry"], "type": ["change"]},
    "13": {"category": ["configuration", "registry"], "type": ["change"]},
    "14": {"category": ["configuration", "registry"], "type": ["change"]},
    "15": {"category": ["file"], "type": ["access"]},
    "16": {"category": ["configuration"], "type": ["change"]},
    "17": {"category": ["file"], "type": ["creation"]},
    "18": {"category": ["file"], "type": ["access"]},
    "22": {"category": ["network"], "type": ["connection", "protocol", "info"]},
    "23": {"category": ["file"], "type": ["deletion"]},
    "24": {"type": ["change"]},
    "25": {"category": ["process"], "type": ["change"]},
    "26": {"category": ["file"], "type": ["deletion"]},
}
# event_data keys only the untranscribed steps read (hashes, registry, DNS, image loads, pipes,
# process access, error 255, tamper type): a record carrying one is refused.
NOT_TRANSCRIBED = {
    "ID",
    "Type",
    "Hash",
    "Hashes",
    "SourceProcessGuid",
    "SourceProcessGUID",
    "SourceProcessId",
    "SourceThreadId",
    "SourceImage",
    "Destination",
    "Device",
    "PipeName",
    "ImageLoaded",
    "Signature",
    "SignatureStatus",
    "Signed",
    "QueryName",
    "QueryResults",
    "QueryStatus",
    "TargetObject",
    "Details",
    "_MemberUserName",
    "_MemberDomain",
    "_MemberAccountType",
}
CLEANUP = [  # "## Cleanup" remove list
    "_temp",
    "log.syslog",
    "winlog.event_data.ProcessId",
    "winlog.event_data.ParentProcessId",
    "winlog.event_data.SourceProcessId",
    "winlog.event_data.SourceThreadId",
    "winlog.event_data.SourceIp",
    "winlog.event_data.SourcePort",
    "winlog.event_data.SourcePortName",
    "winlog.event_data.DestinationIp",
    "winlog.event_data.DestinationPort",
    "winlog.event_data.DestinationPortName",
    "winlog.event_data.RuleName",
    "winlog.event_data.User",
    "winlog.event_data.Initiated",
    "winlog.event_data.SourceIsIpv6",
    "winlog.event_data.DestinationIsIpv6",
    "winlog.event_data.QueryStatus",
    "winlog.event_data.Archived",
    "winlog.event_data.IsExecutable",
    "winlog.event_data.QueryResults",
    "winlog.event_data.UtcTime",
    "winlog.event_data.Hash",
    "winlog.event_data.Hashes",
    "winlog.event_data.TargetObject",
    "winlog.event_data.Details",
    "winlog.event_data.version",
    "winlog.time_created",
    "winlog.level",
]


def command_line_to_argv(cmd: str) -> list[str]:
    """The pipeline's "Windows-like SplitCommandLine" painless script (commandLineToArgv/readNextArg)."""
    args: list[str] = []
    while cmd:
        if cmd[0] in " \t":
            cmd = cmd[1:]
            continue
        out: list[str] = []
        inquote, nslash = False, 0
        rest = ""
        while cmd:
            c = cmd[0]
            if c in " \t":
                if not inquote:
                    rest = cmd[1:]
                    break
            elif c == '"':
                out.append("\\" * (nslash // 2))
                if nslash % 2 == 0:
                    if inquote and len(cmd) > 1 and cmd[1] == '"':
                        out.append(c)
                        cmd = cmd[1:]
                    inquote = not inquote
                else:
                    out.append(c)
                nslash = 0
                cmd = cmd[1:]
                continue
            elif c == "\\":
                nslash += 1
                cmd = cmd[1:]
                continue
            out.append("\\" * nslash)
            nslash = 0
            out.append(c)
            cmd = cmd[1:]
        else:
            rest = ""
        out.append("\\" * nslash)
        args.append("".join(out))
        cmd = rest
    return args


def community_id(src: str, sport: int, dst: str, dport: int, transport: str) -> str | None:
    """The ``community_id`` ingest processor (Community ID v1, seed 0) for TCP/UDP."""
    proto = {"tcp": 6, "udp": 17}.get(transport.lower())
    if proto is None:
        return None
    a, b = ipaddress.ip_address(src).packed, ipaddress.ip_address(dst).packed
    if (a, sport) > (b, dport):  # order the endpoints: smaller address (then port) first
        a, b, sport, dport = b, a, dport, sport
    data = (0).to_bytes(2, "big") + a + b + bytes([proto, 0]) + sport.to_bytes(2, "big") + dport.to_bytes(2, "big")
    digest = hashlib.sha1(data, usedforsecurity=False).digest()  # SHA-1 is what the spec hashes with
    return "1:" + base64.b64encode(digest).decode()


def ingest(source: dict[str, Any], *, ecs_version: str = PIPELINE_ECS_VERSION) -> dict[str, Any]:
    """The document default.yml makes of ``source`` (processors in the pipeline's order)."""
    doc = copy.deepcopy(source)
    event_data = get(doc, "winlog.event_data")
    untranscribed = sorted(NOT_TRANSCRIBED & set(event_data or {}))
    # The "-"-valued ones are dropped by the pipeline's first script, so they are harmless.
    untranscribed = [k for k in untranscribed if event_data[k] not in EMPTY_EVENT_DATA]
    if untranscribed:
        raise ValueError(f"event_data fields whose pipeline steps are not transcribed: {untranscribed}")

    ## ECS and Event fields.
    put(doc, "ecs.version", ecs_version)  # set ecs.version
    if isinstance(event_data, dict):  # script: remove empty values from event_data
        for key in [k for k, v in event_data.items() if v in EMPTY_EVENT_DATA]:
            del event_data[key]
    if get(doc, "winlog.level") != "":  # rename winlog.level -> log.level
        rename(doc, "winlog.level", "log.level")
    if get(doc, "winlog.time_created") is not None:  # date winlog.time_created -> event.created
        put(doc, "event.created", iso_millis(str(get(doc, "winlog.time_created"))))
    if get(doc, "winlog.event_data.UtcTime") is not None:  # date UtcTime (UTC) in place
        put(doc, "winlog.event_data.UtcTime", iso_millis(str(get(doc, "winlog.event_data.UtcTime"))))
    if get(doc, "log.syslog.appname") is not None:  # rename log.syslog.appname -> process.name
        rename(doc, "log.syslog.appname", "process.name")
    if get(doc, "log.syslog.hostname") is not None:  # rename log.syslog.hostname -> host.hostname
        rename(doc, "log.syslog.hostname", "host.hostname")
    convert(doc, "log.syslog.procid", "process.pid", "long")
    pop(doc, "sysmon.log")  # remove sysmon.log
    put(doc, "event.kind", "event")
    event_id = get(doc, "winlog.event_id")  # set event.code '{{{winlog.event_id}}}' (missing renders "")
    put(doc, "event.code", "" if event_id is None else str(event_id))
    put(doc, "event.action", "log")
    code = get(doc, "event.code")
    for key, value in CATEGORIES.get(code, {}).items():  # "Add ECS categorization fields"
        put(doc, f"event.{key}", list(value))
    convert(doc, "winlog.record_id", "winlog.record_id", "string")
    rename(doc, "winlog.event_data.RuleName", "rule.name")
    rename(doc, "winlog.event_data.provider_name", "event.provider")
    rename(doc, "winlog.event_data.opcode", "winlog.opcode")
    convert(doc, "winlog.event_data.version", "winlog.version", "long")

    ## Process fields
    rename(doc, "winlog.event_data.ProcessGuid", "process.entity_id")
    convert(doc, "winlog.event_data.ProcessId", "process.pid", "long")
    rename(doc, "winlog.event_data.Image", "process.executable")
    rename(doc, "winlog.event_data.CommandLine", "process.command_line")
    rename(doc, "winlog.event_data.CurrentDirectory", "process.working_directory")
    rename(doc, "winlog.event_data.ParentProcessGuid", "process.parent.entity_id")
    convert(doc, "winlog.event_data.ParentProcessId", "process.parent.pid", "long")
    rename(doc, "winlog.event_data.ParentImage", "process.parent.executable")
    rename(doc, "winlog.event_data.ParentCommandLine", "process.parent.command_line")
    if code != "7":
        rename(doc, "winlog.event_data.OriginalFileName", "process.pe.original_file_name")
        for name, target in (
            ("Company", "company"),
            ("Description", "description"),
            ("FileVersion", "file_version"),
            ("Product", "product"),
        ):  # set process.pe.* copy_from winlog.event_data.* (ignore_empty_value; the source stays)
            value = get(doc, f"winlog.event_data.{name}")
            if value not in (None, ""):
                put(doc, f"process.pe.{target}", value)
    # "Implements Windows-like SplitCommandLine"
    for prefix in ("process", "process.parent"):
        cmd = get(doc, f"{prefix}.command_line")
        if cmd:
            put(doc, f"{prefix}.args", command_line_to_argv(cmd))
            put(doc, f"{prefix}.args_count", len(get(doc, f"{prefix}.args")))
    # "Adds process name information": the name after the last backslash, so a Linux path
    # (no backslash) gives no name and process.name stays the syslog appname ("sysmon").
    for prefix in ("process", "process.parent"):
        executable = get(doc, f"{prefix}.executable")
        if executable and get(doc, f"{prefix}.name") is None and "\\" in executable:
            put(doc, f"{prefix}.name", executable[executable.rindex("\\") + 1 :])

    ## File fields
    rename(doc, "winlog.event_data.TargetFilename", "file.path")
    # "Adds file information": again only after a backslash -> nothing for a Linux path.
    path = get(doc, "file.path")
    if path and len(path) > 1 and "\\" in path:
        index = path.rindex("\\")
        put(doc, "file.name", path[index + 1 :])
        put(doc, "file.directory", path[:index])
        if "." in path:
            put(doc, "file.extension", path[path.rindex(".") + 1 :])

    ## Network, Destination, and Source fields
    rename(doc, "winlog.event_data.Protocol", "network.transport")
    if code != "22":
        rename(doc, "winlog.event_data.DestinationPortName", "network.protocol")
        rename(doc, "winlog.event_data.SourcePortName", "network.protocol")
    else:
        put(doc, "network.protocol", "dns")
    convert(doc, "winlog.event_data.SourceIp", "source.ip", "ip")
    rename(doc, "winlog.event_data.SourceHostname", "source.domain")
    convert(doc, "winlog.event_data.SourcePort", "source.port", "long")
    convert(doc, "winlog.event_data.DestinationIp", "destination.ip", "ip")
    rename(doc, "winlog.event_data.DestinationHostname", "destination.domain")
    convert(doc, "winlog.event_data.DestinationPort", "destination.port", "long")
    initiated = get(doc, "winlog.event_data.Initiated")
    if initiated in ("true", "false"):
        put(doc, "network.direction", "egress" if initiated == "true" else "ingress")
    ipv6 = get(doc, "winlog.event_data.SourceIsIpv6")
    if ipv6 in ("true", "false"):
        put(doc, "network.type", "ipv6" if ipv6 == "true" else "ipv4")
    fields = [get(doc, f) for f in ("source.ip", "source.port", "destination.ip", "destination.port")]
    if all(f is not None for f in fields) and get(doc, "network.transport"):  # community_id
        cid = community_id(fields[0], fields[1], fields[2], fields[3], get(doc, "network.transport"))
        if cid:
            put(doc, "network.community_id", cid)

    ## User fields
    identifier = get(doc, "winlog.user.identifier")
    if identifier not in (None, ""):  # set user.id copy_from winlog.user.identifier
        put(doc, "user.id", identifier)
    user = get(doc, "winlog.event_data.User")
    if user is not None:  # split on "\" -> user.domain / user.name only for DOMAIN\name
        parts = user.split("\\")
        put(doc, "_temp.user_parts", parts)
        if len(parts) == 2:
            if parts[0]:
                put(doc, "user.domain", parts[0])
            if parts[1]:
                put(doc, "user.name", parts[1])

    ## Sysmon fields
    convert(doc, "winlog.event_data.Archived", "sysmon.file.archived", "boolean")
    convert(doc, "winlog.event_data.IsExecutable", "sysmon.file.is_executable", "boolean")

    ## Related fields (append, allow_duplicates: false)
    for field, target in (("user.name", "related.user"), ("source.ip", "related.ip"), ("destination.ip", "related.ip")):
        value = get(doc, field)
        if value not in (None, ""):
            values = get(doc, target) or []
            if value not in values:
                put(doc, target, [*values, value])

    ## Cleanup
    for field in CLEANUP:
        pop(doc, field)
    if get(doc, "winlog.event_data") == {}:
        pop(doc, "winlog.event_data")
    if "preserve_original_event" not in (doc.get("tags") or []):
        pop(doc, "event.original")
    return _drop_empty(doc)


def _drop_empty(value: Any) -> Any:
    """The last script: remove null, "", empty maps and empty lists, recursively."""
    if isinstance(value, dict):
        cleaned = {k: _drop_empty(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if v is not None and v != "" and v != {} and v != []}
    if isinstance(value, list):
        cleaned_list = [_drop_empty(v) for v in value]
        return [v for v in cleaned_list if v is not None and v != "" and v != {} and v != []]
    return value


# --- the log ----------------------------------------------------------------------------------------


def log_lines(path: Path = LOG) -> list[tuple[int, int, str]]:
    """(line number from 1, byte offset, line without its CR LF) of each line of the log."""
    out, offset = [], 0
    for number, raw in enumerate(path.read_bytes().split(b"\n")[:-1], 1):
        out.append((number, offset, raw.decode("utf-8").rstrip("\r")))
        offset += len(raw) + 1
    return out


def with_values(line: str, values: dict[str, str]) -> str:
    """The line with the text of some ``<Data Name="...">`` elements replaced (values only)."""
    for name, value in values.items():
        pattern = re.compile(rf'(<Data Name="{re.escape(name)}">)([^<]*)(</Data>)')
        if not pattern.search(line):
            raise KeyError(f"the record has no <Data Name={name!r}>")
        text = escape(value)
        line = pattern.sub(lambda m, text=text: m[1] + text + m[3], line, count=1)
    return line


def derive(number: int, values: dict[str, str] | None = None) -> dict[str, Any]:
    """The indexed document of line ``number`` of sysmon.log (with ``values`` replaced, if given)."""
    for n, offset, line in log_lines():
        if n == number:
            return ingest(agent(with_values(line, values or {}), offset))
    raise IndexError(number)


def _sorted(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    values = dict(arg.split("=", 1) for arg in argv[1:])
    print(json.dumps(_sorted(derive(int(argv[0]), values)), indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
