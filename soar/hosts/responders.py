"""Responders: host-side POSIX sh scripts piped to ``sh -s`` over SSH.

Nothing is copied to the host: the script (``responders/_lib.sh`` then the
responder) is the command's stdin, its arguments are an argument list quoted for
the remote shell. Results come back as ``soar: key=value`` lines; the exit status
says done (0), bad argument (2), not in the expected state (3), refused (4) or a
missing tool (5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from soar.actions.model import PlannedCommand
from soar.config import Settings
from soar.errors import ContentError
from soar.hosts.inventory import Host
from soar.hosts.transport import CommandResult, Session

BUILTIN_RESPONDERS = Path(__file__).resolve().parent.parent.parent / "responders"
LIB = "_lib.sh"
UNPRIVILEGED = frozenset({"probe"})  # a TCP connect needs no root: no sudo

EXIT_OK, EXIT_BAD_ARGUMENT, EXIT_NOT_IN_STATE, EXIT_REFUSED, EXIT_MISSING_TOOL = 0, 2, 3, 4, 5


SELF_END = "SOAR_SELF_END"


@dataclass(frozen=True)
class Responder:
    name: str
    script: str = field(repr=False)
    origin: str  # "responders/<name>.sh", for plans and run records
    # the script plus ``soar_self`` printing the script: sent only with --persist, which keeps it on the host
    # for the boot hook (see responders/_lib.sh)
    persisting: str = field(default="", repr=False)

    def stdin(self, args: list[str]) -> str:
        return self.persisting if "--persist" in args and self.persisting else self.script

    def command(self, host: Host, mode: str, args: list[str]) -> PlannedCommand:
        prefix = ["sudo", "-n", "--"] if host.sudo and self.name not in UNPRIVILEGED else []
        argv = (*prefix, "sh", "-s", "--", mode, *args)
        return PlannedCommand(host=host.name, argv=argv, stdin_script=self.origin, note=f"{self.name} {mode}")


def _folder(settings: Settings, name: str) -> Path:
    own = settings.content_root / "responders"
    return own if (own / f"{name}.sh").is_file() else BUILTIN_RESPONDERS


def load_responder(settings: Settings, name: str) -> Responder:
    """The responder ``name`` from the content root's ``responders/``, else the built-in one."""
    folder = _folder(settings, name)
    try:
        lib = (folder / LIB).read_text(encoding="utf-8")
        body = (folder / f"{name}.sh").read_text(encoding="utf-8")
    except OSError as exc:
        raise ContentError(f"responder {name}: cannot read {exc.filename}: {exc.strerror}") from None
    script = wrap(lib, body)
    return Responder(name=name, script=script, origin=f"responders/{name}.sh", persisting=with_self(lib, body))


def wrap(lib: str, body: str) -> str:
    """One function around everything: sh parses it whole before running a line, so a script cut short
    in transit (the connection dropped mid-send) is a syntax error that runs nothing, never half a responder."""
    return f'soar_responder() {{\n{lib}\n{body}\n}}\nsoar_responder "$@"\n'


def with_self(lib: str, body: str) -> str:
    """:func:`wrap` plus ``soar_self``, which prints the wrapped script itself (a quoted here-document: nothing in
    it expands). Defined before the call: a script cut short inside it is a syntax error that runs nothing."""
    script = wrap(lib, body)
    if SELF_END in script.splitlines():
        raise ContentError(f"a responder contains the line {SELF_END}, which ends its own copy")
    return f"soar_responder() {{\n{lib}\n{body}\n}}\nsoar_self() {{\ncat <<'{SELF_END}'\n{script}{SELF_END}\n}}\n" + (
        'soar_responder "$@"\n'
    )


def parse_fields(stdout: str) -> dict[str, str]:
    """The ``soar: key=value`` lines of a responder's output (later lines win)."""
    fields: dict[str, str] = {}
    for line in stdout.splitlines():
        if line.startswith("soar: ") and "=" in line:
            key, _, value = line[6:].partition("=")
            fields[key.strip()] = value.strip()
    return fields


@dataclass
class Outcome:
    """One responder mode run on one host."""

    planned: PlannedCommand
    result: CommandResult
    fields: dict[str, str]

    @property
    def ok(self) -> bool:
        return self.result.ok

    @property
    def status(self) -> int | None:
        return self.result.exit_status

    def describe(self) -> str:
        r = self.result
        if r.lost:
            return "the connection was lost while the command ran"
        if r.timed_out:
            return f"timed out after {r.seconds:.1f} s"
        reason = self.fields.get("error") or r.stderr.strip().splitlines()[-1:] or [""]
        text = reason if isinstance(reason, str) else reason[0]
        return f"exit status {r.exit_status}: {text}".rstrip(": ")

    def record(self) -> dict[str, object]:
        r = self.result
        return {
            "mode": self.planned.argv[self.planned.argv.index("--") + 1] if "--" in self.planned.argv else "",
            "exit_status": r.exit_status,
            "timed_out": r.timed_out,
            "lost": r.lost,
            "seconds": round(r.seconds, 3),
            "fields": self.fields,
        }


def run_responder(
    session: Session, responder: Responder, mode: str, args: list[str], timeout: float | None = None
) -> Outcome:
    planned = responder.command(session.host, mode, args)
    result = session.run(planned.argv, stdin=responder.stdin(args).encode("utf-8"), timeout=timeout)
    return Outcome(planned, result, parse_fields(result.stdout))
