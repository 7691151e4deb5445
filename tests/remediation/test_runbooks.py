"""Runbooks as code: the repository's files load; bad files are refused naming the file and line."""
import textwrap
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from remediation.admin import RunbookForm
from remediation.models import Runbook
from remediation.runbooks import RunbookError, parse_file

ROOT = Path(__file__).resolve().parents[2]


def _write(tmp_path, text, name="bad.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def test_the_repository_runbooks_load_and_reload_idempotently(db):
    call_command("load_runbooks", str(ROOT / "runbooks"), verbosity=0)
    demo = Runbook.objects.get(name="demo-recover")
    assert [s["action"] for s in demo.steps] == ["demo.recover", "demo.recover"]
    assert demo.steps[0]["requires_approval"] is True and demo.steps[0]["params"] == {"service": "$service"}
    assert demo.source_file.endswith("runbooks/demo.yaml") and demo.source_line == 5
    call_command("load_runbooks", str(ROOT / "runbooks"), verbosity=0)
    assert Runbook.objects.filter(name="demo-recover").count() == 1


def test_approval_defaults_to_required_for_actions_that_change_production(tmp_path):
    path = _write(tmp_path, """
        runbooks:
          - name: restart
            steps:
              - action: kubernetes.rollout_restart
                params: {deployment: $service}
    """)
    [runbook] = parse_file(path)
    assert runbook["steps"][0]["requires_approval"] is True
    assert runbook["steps"][0]["automatic"] is False


@pytest.mark.parametrize("text, line, fragment", [
    ("""
     runbooks:
       - name: restart
         steps:
           - action: k8s.restart
     """, 4, "steps[0].action: unknown action 'k8s.restart'"),
    ("""
     runbooks:
       - name: restart
         match:
           min_confidence: 1.5
         steps:
           - action: demo.recover
             params: {service: payment}
     """, 4, "match.min_confidence: must be a number between 0 and 1"),
    ("""
     runbooks:
       - name: scale
         steps:
           - action: kubernetes.scale
             params:
               deployment: $service
               replicas: many
     """, 7, "params.replicas: must be an integer"),
    ("""
     runbooks:
       - name: scale
         steps:
           - action: kubernetes.scale
             params: {deployment: $service, replicas: 2, colour: blue}
     """, 5, "colour: unknown parameter"),
    ("""
     runbooks:
       - name: restart
         steps:
           - action: demo.recover
             params: {service: $servise}
     """, 5, "bad placeholder"),
    ("""
     runbooks:
       - name: restart
         steps:
           - action: demo.recover
             params: {service: a}
             automatic: yes please
     """, 6, "automatic: must be true or false"),
    ("""
     runbooks:
       - name: restart
         match: {hypothesis_kinds: [gremlins]}
         steps: [{action: demo.recover, params: {service: a}}]
     """, 3, "unknown hypothesis kind 'gremlins'"),
    ("""
     runbooks:
       - name: restart
         steps: [{action: demo.recover, params: {service: a}}]
         steps: []
     """, 4, "duplicate key 'steps'"),
    ("""
     runbooks:
       - name: restart
         steps: [{action: demo.recover, params: {service: a}}
     """, 4, "invalid YAML"),
    ("""
     runbooks:
       - name: one
         steps: [{action: demo.recover, params: {service: a}}]
       - name: one
         steps: [{action: demo.recover, params: {service: b}}]
     """, 4, "duplicate runbook name 'one' (first at line 2)"),
])
def test_bad_runbooks_are_refused_with_file_and_line(tmp_path, text, line, fragment):
    path = _write(tmp_path, text)
    with pytest.raises(RunbookError) as caught:
        parse_file(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: "), message
    assert fragment in message, message


def test_load_runbooks_command_refuses_a_bad_file_and_changes_nothing(tmp_path, db):
    _write(tmp_path, """
        runbooks:
          - name: good
            steps: [{action: demo.recover, params: {service: a}}]
    """, "a.yaml")
    bad = _write(tmp_path, """
        runbooks:
          - name: bad
            steps: [{action: nope}]
    """, "b.yaml")
    with pytest.raises(CommandError, match=rf"{bad}:3: runbooks\[0\].steps\[0\].action: unknown action 'nope'"):
        call_command("load_runbooks", str(tmp_path), verbosity=0)
    assert not Runbook.objects.exists()


def test_admin_form_validates_steps_like_the_files(db):
    form = RunbookForm(data={"name": "x", "title": "X", "enabled": True, "match": "{}",
                             "steps": '[{"action": "kubernetes.scale", "params": {"deployment": "a", "replicas": -1}}]'})
    assert not form.is_valid()
    assert "replicas: must be at least 0" in str(form.errors["steps"])
    ok = RunbookForm(data={"name": "x", "title": "X", "enabled": True, "match": '{"min_confidence": 0.5}',
                           "steps": '[{"action": "demo.recover", "params": {"service": "$service"}}]'})
    assert ok.is_valid(), ok.errors
    runbook = ok.save()
    assert runbook.steps[0]["requires_approval"] is True and runbook.steps[0]["auto_min_confidence"] == 0.8
