"""Templates run sandboxed with StrictUndefined; alert values are data and never evaluated."""

from __future__ import annotations

import pytest

from soar.playbooks import templating


def test_whole_expression_keeps_its_type_and_text_renders_as_text() -> None:
    ctx = {"alert": {"related": {"ip": ["1.2.3.4", "5.6.7.8"]}, "n": 3}}
    assert templating.render_value("{{ alert.related.ip }}", ctx) == ["1.2.3.4", "5.6.7.8"]
    assert templating.render_value("{{ alert.n }}", ctx) == 3
    assert templating.render_value("n={{ alert.n }}", ctx) == "n=3"
    assert templating.render_value({"a": ["{{ alert.n }}", "x"]}, ctx) == {"a": [3, "x"]}


def test_missing_field_is_an_error_not_an_empty_string() -> None:
    with pytest.raises(templating.TemplateProblem, match=r"'dict object' has no attribute 'nope'"):
        templating.render_value("{{ alert.nope }}", {"alert": {}})
    with pytest.raises(templating.TemplateProblem, match="UndefinedError"):
        templating.render_value("host {{ alert.host.name }}", {"alert": {"host": {}}})
    assert templating.render_value("{{ alert.x | default('none') }}", {"alert": {}}) == "none"


@pytest.mark.parametrize(
    "hostile",
    [
        "{{ 7*7 }}",
        "{% for x in range(3) %}x{% endfor %}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "$(id)`id`;|&",
    ],
)
def test_alert_values_are_never_rendered(hostile: str) -> None:
    ctx = {"alert": {"user": {"name": hostile}}}
    assert templating.render_value("{{ alert.user.name }}", ctx) == hostile
    assert templating.render_value("user: {{ alert.user.name }}!", ctx) == f"user: {hostile}!"


def test_author_templates_cannot_escape_the_sandbox() -> None:
    with pytest.raises(templating.TemplateProblem, match=r"SecurityError|UndefinedError"):
        templating.render_value("{{ ''.__class__.__mro__[1].__subclasses__() }}", {})
    with pytest.raises(templating.TemplateProblem):
        templating.render_value("{{ range(10) | list }}", {})  # no globals at all


def test_when_expressions() -> None:
    ctx = {"steps": {"a": {"status": "succeeded"}}}
    assert templating.evaluate("steps.a.status == 'succeeded'", ctx) is True
    assert templating.evaluate("{{ steps.a.status == 'failed' }}", ctx) is False


@pytest.mark.parametrize(
    ("tag", "template"),
    [
        ("include", "x {% include 'other' %}"),
        ("import", "{% import 'other' as o %}{{ o }}"),
        ("from", "{% from 'other' import o %}{{ o }}"),
        ("extends", "{% extends 'other' %}"),
        ("include", "{% if alert.x %}\n{% include alert.x %}\n{% endif %}"),
    ],
)
def test_tags_loading_another_template_fail_with_the_reason_not_an_internal_error(tag: str, template: str) -> None:
    reason = f"template tag '{tag}' is not allowed"
    with pytest.raises(templating.TemplateProblem, match=reason):
        templating.check(template)
    with pytest.raises(templating.TemplateProblem, match=reason) as info:
        templating.render_value({"message": template}, {"alert": {"x": "/etc/passwd"}})
    assert ("line 2 of the template" in str(info.value)) == ("\n" in template)


def test_a_step_whose_template_includes_another_fails_with_the_reason() -> None:
    from soar.actions import load_registry
    from soar.config import load_settings
    from soar.playbooks import planner
    from soar.playbooks.model import Step
    from tests.unit.playbooks.test_loader import REPO

    step = Step.model_validate({"id": "say", "uses": "core.log", "with": {"message": "{% include 'x' %}"}})
    expansion = planner.expand(step, {"alert": {}}, load_registry(load_settings(content_root=REPO)))
    assert not expansion.instances
    assert expansion.error == "step say: template tag 'include' is not allowed: templates only read their context"
