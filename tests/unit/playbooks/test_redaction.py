"""One secret collector for run records, step outputs, audit entries and reports (pure: no services)."""

from __future__ import annotations

from pathlib import Path

from soar.audit.redact import configured_secrets, redact
from soar.config import MASK, Settings
from soar.playbooks.records import redacted


def test_run_records_hide_every_secret_the_audit_log_hides(tmp_path: Path) -> None:
    tokens = tmp_path / "principals.yml"
    tokens.write_text("principals:\n  - {name: a, roles: [admin], token: api-token-Zz81-0123456789}\n")
    settings = Settings(
        state_dir=tmp_path / "state",
        api_tokens_file=tokens,
        redis_url="redis://:redis-pass-Qq77@127.0.0.1:6379/0",
        elasticsearch_password="es-pass-Xy55-secret",  # type: ignore[arg-type]
    )
    output = {
        "stdout": "connected with redis-pass-Qq77, es-pass-Xy55-secret and api-token-Zz81-0123456789",
        "nested": [{"note": "again redis-pass-Qq77"}],
        "api_key": "anything under a secret-looking key",
    }
    run_record = redacted(output, settings)
    assert run_record == redact(output, configured_secrets(settings))  # the same collector as the audit log
    text = str(run_record)
    for secret in ("redis-pass-Qq77", "es-pass-Xy55-secret", "api-token-Zz81-0123456789", "anything under"):
        assert secret not in text
    assert run_record["stdout"] == f"connected with {MASK}, {MASK} and {MASK}"
    assert run_record["api_key"] == MASK
