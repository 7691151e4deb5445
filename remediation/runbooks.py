"""Runbooks as code: parse runbooks/*.yaml, validate with file and line, and match incidents.

A file holds a list of runbooks:

    runbooks:
      - name: demo-recover                 # unique slug
        title: Recover the suspected demo service
        match:                             # every key given must hold; none = matches everything
          services: [payment, checkout]    # the target service (top hypothesis, else primary)
          labels: {team: payments}         # incident labels (subset)
          rules: ["High error ratio"]      # a rule of one of the incident's alerts
          hypothesis_kinds: [code_error]   # the top hypothesis' kind
          min_confidence: 0.3              # ... with at least this confidence
        steps:                             # tried in order: a failed verification proposes the next
          - name: recover
            action: demo.recover           # remediation.actions registry
            params: {service: $service}    # $service, $namespace, $incident are substituted
            requires_approval: true        # default: true when the action changes production
            automatic: true                # may run without a person ...
            auto_min_confidence: 0.8       # ... when the hypothesis' confidence is at least this
            verify_seconds: 120            # watch the incident's signal this long afterwards

Errors name the file and the line of the offending node (yaml's node marks):
`runbooks/demo.yaml:14: steps[0].action: unknown action 'k8s.restart' (known: ...)`.
"""
from __future__ import annotations

import string
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from django.core.exceptions import ValidationError

from . import actions

MATCH_KEYS = {"services", "labels", "rules", "hypothesis_kinds", "min_confidence"}
STEP_KEYS = {"name", "action", "params", "requires_approval", "automatic", "auto_min_confidence", "verify_seconds"}
RUNBOOK_KEYS = {"name", "title", "description", "enabled", "match", "steps"}
TEMPLATE_SAMPLE = {"service": "service", "namespace": "default", "incident": "1"}
MAX_VERIFY_SECONDS = 3600


class RunbookError(ValueError):
    """A refused runbook; the message names the file and line when known."""

    def __init__(self, message: str, *, file: str = "", line: int | None = None, path: str = ""):
        self.file, self.line, self.path, self.reason = file, line, path, message
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else (f"line {line}: " if line else ""))
        super().__init__(f"{where}{path + ': ' if path else ''}{message}")


# -- YAML with line numbers -----------------------------------------------------------------------

class _Marked:
    line: int | None = None
    lines: dict


class MarkedDict(dict, _Marked):
    pass


class MarkedList(list, _Marked):
    pass


class _Loader(yaml.SafeLoader):
    pass


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> MarkedDict:
    result = MarkedDict()
    result.line, result.lines = node.start_mark.line + 1, {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if key in result:
            raise RunbookError(f"duplicate key {key!r}", line=key_node.start_mark.line + 1)
        result[key] = loader.construct_object(value_node, deep=True)
        result.lines[key] = value_node.start_mark.line + 1
    return result


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> MarkedList:
    result = MarkedList(loader.construct_object(child, deep=True) for child in node.value)
    result.line = node.start_mark.line + 1
    result.lines = {i: child.start_mark.line + 1 for i, child in enumerate(node.value)}
    return result


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


def _line(container: Any, key: Any = None) -> int | None:
    lines = getattr(container, "lines", None) or {}
    return lines.get(key) if key is not None and key in lines else getattr(container, "line", None)


def _plain(value: Any) -> Any:
    """Marked containers → plain dicts and lists (what is stored in JSON fields)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# -- validation ---------------------------------------------------------------------------------------

@dataclass
class _Where:
    file: str
    path: str
    container: Any
    key: Any = None

    def error(self, message: str, key: Any = None) -> RunbookError:
        if key is None:  # about the node itself
            return RunbookError(message, file=self.file, line=_line(self.container, self.key), path=self.path)
        path = f"{self.path}.{key}" if self.path else str(key)
        return RunbookError(message, file=self.file, line=_line(self.container, key), path=path)


def _probability(value: Any, where: _Where, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise where.error(f"must be a number between 0 and 1, not {value!r}", key)
    return float(value)


def _str_list(value: Any, where: _Where, key: str) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise where.error("must be a list of non-empty strings", key)
    return list(value)


def _validate_match(match: Any, where: _Where) -> dict:
    if match is None:
        return {}
    if not isinstance(match, dict):
        raise where.error("must be a mapping")
    unknown = set(match) - MATCH_KEYS
    if unknown:
        raise where.error(f"unknown key {sorted(unknown)[0]!r} (allowed: {', '.join(sorted(MATCH_KEYS))})",
                          sorted(unknown)[0])
    out: dict = {}
    for key in ("services", "rules", "hypothesis_kinds"):
        if key in match:
            out[key] = _str_list(match[key], where, key)
    if "hypothesis_kinds" in out:
        from investigation.models import HypothesisKind

        bad = [k for k in out["hypothesis_kinds"] if k not in HypothesisKind.values]
        if bad:
            raise where.error(f"unknown hypothesis kind {bad[0]!r} (known: {', '.join(HypothesisKind.values)})",
                              "hypothesis_kinds")
    if "labels" in match:
        labels = match["labels"]
        if not isinstance(labels, dict) or not all(isinstance(k, str) and isinstance(v, (str, int, float, bool))
                                                   for k, v in labels.items()):
            raise where.error("must be a mapping of label names to values", "labels")
        out["labels"] = {k: str(v) for k, v in labels.items()}
    if "min_confidence" in match:
        out["min_confidence"] = _probability(match["min_confidence"], where, "min_confidence")
    return out


def render_params(params: dict, variables: dict[str, str]) -> dict:
    """Substitute $service, $namespace and $incident in string values (recursively)."""

    def render(value: Any) -> Any:
        if isinstance(value, str):
            return string.Template(value).substitute(variables)
        if isinstance(value, dict):
            return {k: render(v) for k, v in value.items()}
        if isinstance(value, list):
            return [render(v) for v in value]
        return value

    return render(params)


def _validate_step(step: Any, where: _Where, names: set[str]) -> dict:
    if not isinstance(step, dict):
        raise where.error("a step must be a mapping")
    unknown = set(step) - STEP_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise where.error(f"unknown key {key!r} (allowed: {', '.join(sorted(STEP_KEYS))})", key)
    kind_name = step.get("action")
    if not kind_name:
        raise where.error("is required", "action")
    kind = actions.get(kind_name)
    if kind is None:
        raise where.error(f"unknown action {kind_name!r} (known: {', '.join(actions.names())})", "action")
    name = step.get("name") or kind_name
    if not isinstance(name, str) or len(name) > 100:
        raise where.error("must be a string of at most 100 characters", "name")
    if name in names:
        raise where.error(f"duplicate step name {name!r}", "name")
    names.add(name)
    params = step.get("params") or {}
    if not isinstance(params, dict):
        raise where.error("must be a mapping", "params")
    try:
        sample = render_params(params, TEMPLATE_SAMPLE)
    except (KeyError, ValueError) as exc:
        raise where.error(f"bad placeholder {exc} (use $service, $namespace or $incident)", "params") from None
    try:
        kind.clean(sample)
    except actions.ParamError as exc:
        sub = _Where(where.file, f"{where.path}.params", params)
        raise sub.error(exc.message, exc.field if exc.field in params else None) from None
    out = {"name": name, "action": kind_name, "params": _plain(params)}
    for key, default in (("requires_approval", kind.changes_production), ("automatic", False)):
        value = step.get(key, default)
        if not isinstance(value, bool):
            raise where.error(f"must be true or false, not {value!r}", key)
        out[key] = value
    out["auto_min_confidence"] = (_probability(step["auto_min_confidence"], where, "auto_min_confidence")
                                  if "auto_min_confidence" in step else 0.8)
    if "auto_min_confidence" in step and not out["automatic"]:
        raise where.error("is only meaningful with automatic: true", "auto_min_confidence")
    verify = step.get("verify_seconds", None)
    if verify is not None and (isinstance(verify, bool) or not isinstance(verify, int) or not 0 <= verify <= MAX_VERIFY_SECONDS):
        raise where.error(f"must be a whole number of seconds from 0 to {MAX_VERIFY_SECONDS}", "verify_seconds")
    out["verify_seconds"] = verify
    return out


def validate_runbook(entry: Any, *, file: str = "", path: str = "runbook") -> dict:
    """A runbook mapping → its clean form (what the Runbook row stores). Raises RunbookError."""
    where = _Where(file, path, entry)
    if not isinstance(entry, dict):
        raise where.error("a runbook must be a mapping")
    unknown = set(entry) - RUNBOOK_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise where.error(f"unknown key {key!r} (allowed: {', '.join(sorted(RUNBOOK_KEYS))})", key)
    name = entry.get("name")
    if not isinstance(name, str) or not name or len(name) > 100 or not all(c.isalnum() or c in "-_" for c in name):
        raise where.error("is required: a slug (letters, digits, - and _), at most 100 characters", "name")
    enabled = entry.get("enabled", True)
    if not isinstance(enabled, bool):
        raise where.error("must be true or false", "enabled")
    steps = entry.get("steps")
    if not isinstance(steps, list) or not steps:
        raise where.error("must be a non-empty list", "steps")
    names: set[str] = set()
    clean_steps = [_validate_step(step, _Where(file, f"{path}.steps[{i}]", *((step,) if isinstance(step, dict)
                                                                            else (steps, i))), names)
                   for i, step in enumerate(steps)]
    match = entry.get("match")
    match_where = _Where(file, f"{path}.match", *((match,) if isinstance(match, dict) else (entry, "match")))
    return {
        "name": name,
        "title": str(entry.get("title") or name)[:200],
        "description": str(entry.get("description") or "")[:5000],
        "enabled": enabled,
        "match": _validate_match(match, match_where),
        "steps": clean_steps,
        "source_line": _line(entry),
    }


def parse_file(path: Path, *, display: str | None = None) -> list[dict]:
    """Every runbook of one YAML file, validated. Raises RunbookError naming the file and line."""
    file = display or str(path)
    try:
        text = path.read_text()
    except OSError as exc:
        raise RunbookError(f"cannot read: {exc.strerror or exc}", file=file) from None
    try:
        document = yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except RunbookError as exc:
        raise RunbookError(exc.reason, file=file, line=exc.line) from None
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise RunbookError(f"invalid YAML: {exc.problem}", file=file, line=line) from None
    except yaml.YAMLError as exc:
        raise RunbookError(f"invalid YAML: {exc}", file=file) from None
    if not isinstance(document, dict) or not isinstance(document.get("runbooks"), list):
        raise RunbookError("expected a top-level 'runbooks' list", file=file, line=_line(document) or 1)
    unknown = set(document) - {"runbooks"}
    if unknown:
        key = sorted(unknown)[0]
        raise RunbookError(f"unknown top-level key {key!r}", file=file, line=_line(document, key))
    runbooks = document["runbooks"]
    out, seen = [], {}
    for i, entry in enumerate(runbooks):
        clean = validate_runbook(entry, file=file, path=f"runbooks[{i}]")
        if clean["name"] in seen:
            raise RunbookError(f"duplicate runbook name {clean['name']!r} (first at line {seen[clean['name']]})",
                               file=file, line=clean["source_line"], path=f"runbooks[{i}].name")
        seen[clean["name"]] = clean["source_line"]
        out.append(clean)
    return out


def parse_paths(paths: list[Path]) -> list[tuple[str, dict]]:
    """(file, runbook) for every *.yaml / *.yml under the given files or folders, names unique."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files += sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
        else:
            files.append(path)
    if not files:
        raise RunbookError("no runbook files found", file=", ".join(str(p) for p in paths))
    found: list[tuple[str, dict]] = []
    names: dict[str, str] = {}
    for file in files:
        for runbook in parse_file(file):
            if runbook["name"] in names:
                raise RunbookError(f"runbook {runbook['name']!r} is also defined in {names[runbook['name']]}",
                                   file=str(file), line=runbook["source_line"])
            names[runbook["name"]] = f"{file}:{runbook['source_line']}"
            found.append((str(file), runbook))
    return found


def check_json(*, match: Any, steps: Any) -> tuple[dict, list]:
    """Validate the JSON fields as the admin edits them (Django ValidationError per field)."""
    try:
        clean = validate_runbook({"name": "admin", "match": match, "steps": steps}, path="")
    except RunbookError as exc:
        field = "match" if exc.path.lstrip(".").startswith("match") else "steps"
        raise ValidationError({field: str(exc)}) from None
    return clean["match"], clean["steps"]


# -- matching -----------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Match:
    runbook: Any
    service: str  # the target service slug
    hypothesis: Any | None
    confidence: float | None
    reason: str


def match_runbook(runbook, *, incident, services: set[str], primary: str | None, labels: dict, rules: set[str],
                  hypothesis) -> Match | None:
    """Does `runbook` apply to the incident? Pure: the caller passes what it read.

    The target service is the top hypothesis' service when there is one, else the primary service.
    """
    match = runbook.match or {}
    kinds = match.get("hypothesis_kinds")
    minimum = match.get("min_confidence")
    if (kinds or minimum is not None) and hypothesis is None:
        return None
    if kinds and hypothesis.kind not in kinds:
        return None
    if minimum is not None and hypothesis.confidence < minimum:
        return None
    target = hypothesis.service if hypothesis is not None else primary
    if not target:
        return None
    if match.get("services") and target not in match["services"]:
        return None
    for key, value in (match.get("labels") or {}).items():
        if str(labels.get(key)) != value:
            return None
    if match.get("rules") and not rules.intersection(match["rules"]):
        return None
    why = [f"service {target}"]
    if hypothesis is not None:
        why.append(f"hypothesis {hypothesis.kind} ({hypothesis.confidence:.2f})")
    if match.get("rules"):
        why.append("rule " + ", ".join(sorted(rules.intersection(match["rules"]))))
    return Match(runbook=runbook, service=target, hypothesis=hypothesis,
                 confidence=hypothesis.confidence if hypothesis is not None else None,
                 reason="matched " + "; ".join(why))
