"""Loading a sweep config: YAML, dotted overrides, type conversion, and back to a dict."""

from __future__ import annotations

import dataclasses
import difflib
import types
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Literal, Union, get_args, get_origin, get_type_hints

import yaml

from izero.config._checks import REDACTED, SECRET_HEADER_RE, check, is_number
from izero.config.presets import apply_sweep_preset
from izero.config.sweep import SweepConfig
from izero.errors import ConfigError


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    return names.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any, path: str) -> Any:
    """Convert a YAML value to type ``tp`` or raise a ConfigError naming ``path``."""
    origin = get_origin(tp)
    if dataclasses.is_dataclass(tp):
        check(isinstance(value, Mapping), path, value, f"a mapping of {path} fields")
        return _build(tp, value, path + ".")
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if value is None:
            return None
        for arg in args:  # a keyword such as "auto" beside a number
            if get_origin(arg) is Literal and len(args) > 1 and value in get_args(arg):
                return value
        args = [a for a in args if get_origin(a) is not Literal] if len(args) > 1 else args
        if len(args) == 1:
            return _convert(value, args[0], path)
        return _convert_choice(value, args, path)
    if origin is Literal:
        choices = get_args(tp)
        shown = ", ".join(str(c) for c in choices if c is not None)
        hint = difflib.get_close_matches(str(value), [str(c) for c in choices if c], n=1)
        check(
            value in choices,
            path,
            value,
            f"one of {shown}",
            f"did you mean '{hint[0]}'?" if hint else f"use one of {shown}",
        )
        return value
    if origin is tuple:
        (elem,) = get_args(tp)[:1]
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
            if elem is not str:
                value = [yaml.safe_load(v) for v in value]
        if isinstance(value, (int, float)) and not isinstance(value, bool) and elem is not str:
            value = [value]
        check(isinstance(value, (list, tuple)), path, value, f"a list of {_type_name(elem)}s")
        return tuple(_convert(v, elem, path) for v in value)
    if origin is dict:
        _, val_tp = get_args(tp)
        check(isinstance(value, Mapping), path, value, "a mapping")
        out = {}
        for k, v in value.items():
            try:
                out[str(k)] = _convert(v, val_tp, f"{path}.{k}")
            except ConfigError as exc:
                if not SECRET_HEADER_RE.search(str(k)):
                    raise
                raise ConfigError(exc.field, REDACTED, exc.allowed, exc.fix) from None
        return out
    if tp is bool:
        check(isinstance(value, bool), path, value, "true or false")
    elif tp is int:
        check(isinstance(value, int) and not isinstance(value, bool), path, value, "an integer")
    elif tp is float:
        check(is_number(value), path, value, "a number")
        value = float(value)
    elif tp is str:
        check(
            isinstance(value, str),
            path,
            value,
            "a string",
            "quote the text: YAML reads {...} and 'key: value' as a mapping, e.g. "
            f'--set \'{path}="..."\' or {path}: "..." in the file',
        )
    return value


def _convert_choice(value: Any, args: list[Any], path: str) -> Any:
    """A value of a union of ``str`` and dataclasses (``tasks``: a name or a mapping)."""
    classes = [a for a in args if dataclasses.is_dataclass(a)]
    if any(isinstance(value, c) for c in classes):  # built in Python already (and validated)
        return value
    if isinstance(value, Mapping) and len(classes) == 1:
        return _build(classes[0], value, path + ".")
    if isinstance(value, str) and str in args:
        return value
    kinds = (["a name"] if str in args else []) + [
        f"a mapping of {c.__name__} fields" for c in classes
    ]
    check(False, path, value, " or ".join(kinds) or "a value of the right type")
    return value


def _build(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    """Build dataclass ``cls`` from a mapping, refusing unknown keys and wrong types."""
    hints = get_type_hints(cls)
    fields = [f.name for f in dataclasses.fields(cls)]
    for key in raw:
        if key not in fields:
            hint = difflib.get_close_matches(str(key), fields, n=1)
            where = f"section '{prefix[:-1]}'" if prefix else "the top level"
            raise ConfigError(
                f"{prefix}{key}",
                key,
                f"a known key of {where} ({', '.join(fields)})",
                f"did you mean '{prefix}{hint[0]}'?" if hint else "remove or rename the key",
            )
    required = [
        f.name
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    missing = [name for name in required if name not in raw]
    where = f"section '{prefix[:-1]}'" if prefix else "the top level"
    check(
        not missing,
        f"{prefix}{missing[0]}" if missing else prefix,
        dict(raw),
        f"a mapping with {', '.join(required)} in {where}",
        f"add {', '.join(missing)}",
    )
    values = dict(raw)
    presets = getattr(cls, "_PRESETS", None)
    if presets is not None and values.get("preset") is not None:
        preset = _convert(values["preset"], hints["preset"], f"{prefix}preset")
        values = {**presets[preset], **values}
    kwargs = {key: _convert(val, hints[key], f"{prefix}{key}") for key, val in values.items()}
    return cls(**kwargs)


def build_section(cls: type, raw: Mapping[str, Any], prefix: str) -> Any:
    """Build the frozen dataclass ``cls`` from a mapping whose fields live under ``prefix``
    (e.g. ``"method_options.sampling."``): unknown keys and wrong types are refused naming the
    field."""
    return _build(cls, raw, prefix)


def _parse_override(item: str) -> tuple[list[str], Any]:
    key, sep, text = item.partition("=")
    key = key.strip()
    check(
        bool(sep) and bool(key) and all(key.split(".")),
        "--set",
        item,
        "key=value with a dotted key, e.g. budget.q=10",
    )
    try:
        value = yaml.safe_load(text) if text.strip() else None
    except yaml.YAMLError:
        value = text
    return key.split("."), value


def _apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    for item in overrides:
        keys, value = _parse_override(item)
        node = raw
        for i, key in enumerate(keys[:-1]):
            child = node.setdefault(key, {})
            if child is None:
                child = node[key] = {}
            check(
                isinstance(child, dict),
                ".".join(keys[: i + 1]),
                child,
                "a section (mapping) to set sub-keys on",
            )
            node = child
        node[keys[-1]] = value
    return raw


def _read_yaml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            "config file", str(p), "a readable YAML file", f"check the path ({exc.strerror})"
        ) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(
            "config file", str(p), "valid YAML", f"fix the syntax{where}: {problem}"
        ) from exc
    if data is None:
        return {}
    check(isinstance(data, dict), "config file", str(p), "a YAML mapping at the top level")
    return data


def config_from_dict(raw: Mapping[str, Any], *, overrides: Iterable[str] = ()) -> SweepConfig:
    """Build and validate a :class:`SweepConfig` from a plain mapping plus overrides.

    A top-level ``preset`` (:data:`~izero.config.presets.SWEEP_PRESETS`) fills in section
    values first; the mapping's own values win.
    """
    data = _apply_overrides(dict(raw), overrides)
    if data.get("preset") is not None:
        hint = get_type_hints(SweepConfig)["preset"]
        data = apply_sweep_preset(data, _convert(data["preset"], hint, "preset"))
    return _build(SweepConfig, data, "")


def load_config(path: str | Path | None = None, *, overrides: Iterable[str] = ()) -> SweepConfig:
    """Load a sweep configuration from YAML (or the defaults), apply ``key=value`` overrides.

    Raises:
        ConfigError: one line naming the field, the value, what is allowed and the fix.
    """
    raw = _read_yaml(path) if path is not None else {}
    return config_from_dict(raw, overrides=overrides)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def config_to_dict(cfg: SweepConfig) -> dict[str, Any]:
    """A JSON-safe dict of ``cfg`` (for provenance); header values that look secret are redacted.

    ``config_from_dict(config_to_dict(cfg)) == cfg`` for configs without redacted headers.
    """
    data = _jsonable(dataclasses.asdict(cfg))
    for section in ("blackbox", "proposer"):
        headers = (data.get(section) or {}).get("headers") or {}
        for key in headers:
            if SECRET_HEADER_RE.search(key):
                headers[key] = REDACTED
    return data
