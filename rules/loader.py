"""Load a rules folder into a RuleSet, all or nothing.

Every ``*.yaml`` file under the folder (except ``settings.yaml`` and the
``templates/`` subfolder) is a list of rules. All files are checked and every
problem is reported at once; if any is found nothing is returned, so a bad
edit never replaces a good rule set half-way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from marshmallow import ValidationError

from aftersale.core.catalogs import locale_key
from aftersale.core.dkim import DkimKey, DkimKeyError, load_key
from aftersale.rules.compiler import ConditionErrors, check_field_path, compile_condition
from aftersale.rules.errors import Invalid, RuleError, RulesInvalid, format_path, suggest
from aftersale.rules.model import Rule, RuleSet, Settings, Step
from aftersale.rules.repurchase import REPURCHASE_DUE
from aftersale.rules.schema import RuleSchema, SettingsSchema
from aftersale.rules.source import Document, SyntaxProblem, load_document
from aftersale.rules.step_schemas import load_step

SETTINGS_FILE = "settings.yaml"


def load_rules(folder: Path | str, *, templates: Iterable[str] | None = None) -> RuleSet:
    """Load and compile every rule file under ``folder``.

    Args:
        folder: the rules folder (``RULES_DIR``).
        templates: names of the templates that exist; when given, a step that
            names another template is an error at load time, not at send time.

    Raises:
        RulesInvalid: with every problem found, each with file, line and column.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise RulesInvalid([RuleError(str(folder), None, None, "", "rules folder not found")])
    known_templates = None if templates is None else frozenset(templates)
    errors: list[RuleError] = []
    settings = _load_settings(folder, errors)
    rules: list[Rule] = []
    first_seen: dict[str, str] = {}
    for path in rule_files(folder):
        display = str(path.relative_to(folder.parent)) if folder.parent != path else str(path)
        try:
            document = load_document(path, display)
        except SyntaxProblem as exc:
            errors.append(exc.error)
            continue
        rules.extend(_load_file(document, known_templates, first_seen, errors))
    if errors:
        raise RulesInvalid(errors)
    return RuleSet.build(rules, settings or Settings(), known_templates or frozenset(), str(folder))


def rule_files(folder: Path) -> list[Path]:
    found = [
        path
        for pattern in ("*.yaml", "*.yml")
        for path in folder.rglob(pattern)
        if path.name != SETTINGS_FILE or path.parent != folder
    ]
    return sorted(
        p
        for p in found
        if "templates" not in p.relative_to(folder).parts[:-1] and not p.name.startswith(".")
    )


def _load_settings(folder: Path, errors: list[RuleError]) -> Settings | None:
    path = folder / SETTINGS_FILE
    if not path.exists():
        return Settings()
    display = str(path.relative_to(folder.parent))
    try:
        document = load_document(path, display)
    except SyntaxProblem as exc:
        errors.append(exc.error)
        return None
    data = document.data() or {}
    if not isinstance(data, dict):
        errors.append(
            document.error(
                (), "settings.yaml is a mapping of settings (sender: ..., timezone: ...)"
            )
        )
        return None
    try:
        values = SettingsSchema().load(data)
    except ValidationError as exc:
        errors.extend(_schema_errors(document, (), exc.messages, "settings", SettingsSchema))
        return None
    overrides = values.pop("shops")
    values["dkim"] = _dkim_key(folder, document, ("dkim",), values["dkim"], errors)
    base = _settings(values)
    per_shop = {}
    for domain, raw in overrides.items():
        where = ("shops", domain)
        if not isinstance(raw, dict):
            errors.append(document.error(where, "a shop's overrides are a mapping", "settings"))
            continue
        if "shops" in raw:
            errors.append(document.error(where, "shops cannot be nested", "settings"))
            continue
        try:
            merged = SettingsSchema().load({**data, **raw, "shops": {}})
        except ValidationError as exc:
            errors.extend(_schema_errors(document, where, exc.messages, "settings", SettingsSchema))
            continue
        merged.pop("shops")
        if "dkim" in raw:
            merged["dkim"] = _dkim_key(folder, document, (*where, "dkim"), merged["dkim"], errors)
        else:
            merged["dkim"] = base.dkim
        per_shop[domain.lower()] = _settings(merged)
    return replace(base, per_shop=per_shop)


def _dkim_key(folder: Path, document: Document, where: tuple, values, errors) -> DkimKey | None:
    """A ``dkim:`` mapping's key, read now so a missing or bad key file is a load error."""
    if values is None:
        return None
    key_file = Path(values["key_file"]).expanduser()
    names = {name: f"{format_path(where)}.{name}" for name in ("domain", "selector", "key_file")}
    try:
        return load_key(values["domain"], values["selector"], folder / key_file, names=names)
    except DkimKeyError as exc:
        errors.append(document.error(where, str(exc), "settings"))
        return None


def _settings(values: dict) -> Settings:
    quiet = values.pop("quiet_hours")
    cap = values.pop("frequency_cap")
    woocommerce = values.pop("woocommerce")
    names = values.pop("shop_name_by_language")
    return Settings(
        **values,
        shop_name_by_language={locale_key(k): v for k, v in names.items()},
        platforms={"woocommerce": woocommerce} if woocommerce else {},
        quiet_hours=(quiet["start"], quiet["end"]) if quiet else None,
        frequency_cap=(cap["max"], cap["per"]) if cap else None,
    )


def _load_file(
    document: Document, templates, first_seen: dict[str, str], errors: list[RuleError]
) -> list[Rule]:
    data = document.data()
    if data is None:
        return []
    if not isinstance(data, list):
        errors.append(
            document.error((), "a rule file is a list of rules, each starting with '- name: ...'")
        )
        return []
    rules = []
    for index, raw in enumerate(data):
        rule = _load_rule(document, index, raw, templates, errors)
        if rule is None:
            continue
        if rule.name in first_seen:
            message = (
                f"duplicate rule name {rule.name!r} (first defined at {first_seen[rule.name]})"
            )
            errors.append(_at(document, (index, "name"), f"rule {rule.name!r}", message))
            continue
        first_seen[rule.name] = rule.source
        rules.append(rule)
    return rules


def _load_rule(
    document: Document, index: int, raw, templates, errors: list[RuleError]
) -> Rule | None:
    label = _label(index, raw)
    if not isinstance(raw, dict):
        errors.append(
            document.error((index,), "each rule is a mapping with name, on, category and do", label)
        )
        return None
    before = len(errors)
    try:
        values = RuleSchema().load(raw)
    except ValidationError as exc:
        errors.extend(_schema_errors(document, (index,), exc.messages, label, RuleSchema))
        values = None
    condition = None
    try:
        condition = compile_condition(raw.get("if"))
    except ConditionErrors as exc:
        errors.extend(_at(document, (index, "if", *p.path), label, p.message) for p in exc.problems)
    steps = _load_steps(document, index, raw.get("do"), templates, label, errors)
    until = raw.get("wait", {}).get("until") if isinstance(raw.get("wait"), dict) else None
    if isinstance(until, str) and until and until != REPURCHASE_DUE:
        try:
            check_field_path(until)
        except Invalid as exc:
            errors.append(_at(document, (index, "wait", "until"), label, exc.message))
    if len(errors) > before or values is None:
        return None
    line, _ = document.position((index,))
    return Rule(
        name=values["name"],
        description=values["description"],
        on=values["on"],
        condition=condition,
        steps=tuple(steps),
        category=values["category"][0],
        subcategory=values["category"][1],
        wait=values["wait"]["offset"],
        wait_until=tuple(values["wait"]["until"].split(".")) if values["wait"]["until"] else None,
        cancel_on=frozenset(values["cancel_on"]["order"]),
        cancel_on_customer=frozenset(values["cancel_on"]["customer"]),
        recheck=values["recheck"],
        on_disable=values["on_disable"],
        send_at=values["send_at"],
        digest=values["digest"],
        version=rule_version(raw),
        once_per=values["once_per"]["subject"],
        once_within=values["once_per"]["within"],
        skip_after=values["late"],
        quiet_hours=values["quiet_hours"],
        on_cap=values["on_cap"],
        wait_for=values["wait_for"],
        wait_fallback=values["wait"].get("fallback"),
        mode=values["mode"],
        enabled=values["enabled"],
        shops=frozenset(s.lower() for s in values["shops"]),
        source=f"{document.file}:{line}",
    )


def rule_version(raw: dict) -> str:
    """A short hash of a rule's definition: actions record it, so an operator can tell
    which version of a rule planned a pending action (a moved rule keeps its version)."""
    text = json.dumps(raw, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def _load_steps(document, index, raw_steps, templates, label, errors) -> list[Step]:
    if not isinstance(raw_steps, list):
        return []  # the schema already reported it
    steps = []
    for j, raw in enumerate(raw_steps):
        try:
            kind, params = load_step(raw)
        except ValidationError as exc:
            errors.extend(_flatten(document, (index, "do", j), exc.messages, label))
            continue
        template = params.get("template")
        if templates is not None and template and template not in templates:
            hint = suggest(template, templates) or (
                f" (available: {', '.join(sorted(templates))})" if templates else ""
            )
            errors.append(
                _at(
                    document,
                    (index, "do", j, kind, "template"),
                    label,
                    f"unknown template {template!r}{hint}",
                )
            )
            continue
        steps.append(Step(index=j, type=kind, params=params))
    return steps


def _schema_errors(document, base: tuple, messages, label: str, schema_class) -> list[RuleError]:
    """Marshmallow's nested messages -> RuleErrors, with suggestions for unknown keys."""
    allowed = [f.data_key or name for name, f in schema_class().fields.items()]
    found = []
    for key, value in messages.items() if isinstance(messages, dict) else [("", messages)]:
        if value == ["Unknown field."]:
            found.append(
                _at(
                    document,
                    (*base, key),
                    label,
                    f"unknown key {key!r}{suggest(key, allowed)} (keys: {', '.join(allowed)})",
                )
            )
        elif key == "do" and isinstance(value, dict):
            continue  # steps are validated one by one in _load_steps
        else:
            found.extend(_flatten(document, (*base, key), value, label))
    return found


def _flatten(document, path: tuple, messages, label: str) -> list[RuleError]:
    if isinstance(messages, dict):
        found = []
        for key, value in messages.items():
            found.extend(_flatten(document, (*path, key), value, label))
        return found
    if isinstance(messages, list):
        return [
            _at(document, path, label, str(m)) for m in messages if not isinstance(m, (dict, list))
        ] + [
            e
            for m in messages
            if isinstance(m, (dict, list))
            for e in _flatten(document, path, m, label)
        ]
    return [_at(document, path, label, str(messages))]


def _at(document: Document, path: tuple, label: str, message: str) -> RuleError:
    inside = path[1:] if path and isinstance(path[0], int) else path  # a rule's index, or settings
    relative = format_path(tuple(p for p in inside if p != ""))
    shown = f"{label}, {relative}" if relative else label
    if message == "Missing data for required field.":
        message = f"{path[-1]!r} is required"
    return document.error(path, message, shown)


def _label(index: int, raw) -> str:
    name = raw.get("name") if isinstance(raw, dict) else None
    return f"rule {name!r}" if isinstance(name, str) and name else f"rule #{index + 1}"


def template_names_in(folders: Iterable[Path]) -> set[str]:
    """Template names (sub-folders with a subject or body file) across the search path."""
    names = set()
    for folder in folders:
        if folder and Path(folder).is_dir():
            for child in Path(folder).iterdir():
                if child.is_dir() and any(
                    (child / f).exists() for f in ("subject.txt", "body.txt", "body.html")
                ):
                    names.add(child.name)
    return names
