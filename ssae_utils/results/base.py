"""Typed records for the JSON results files: strict ``from_dict``, ``to_dict`` that writes the
same keys back, and one versioned top-level record per results file (``StageResults``).

A record is a keyword-only dataclass. Each field's annotation says how its JSON value is read:

* another ``Record`` (or any class with ``from_dict``/``to_dict``, e.g. ``retrieval.Selection``): a typed object;
* ``dict[str, X]`` / ``list[X]`` with ``X`` one of those (nesting allowed): containers of typed objects;
* anything else (``dict[str, Any]``, ``float``, ``str | None``...): the JSON value as it is (the parts
  no later stage reads stay plain dicts).

``optional()`` marks a key a file may lack (``ABSENT``: not written back); ``key("lambda")``
names a field whose JSON key is not a Python identifier. A record that carries keys outside
its fields (stage 03's ``<split>_<metric>`` row columns) names a dict field in
``EXTRA_FIELD`` and a pattern those keys must match in ``EXTRA_PATTERN``.

Reading is strict at every typed level: an unknown or missing key raises ``ResultsSchemaError``
(a ``ValueError``) naming the file, the key and the notebook to rerun.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, ClassVar, Mapping, TypeVar


class _Absent:
    """A key the file does not have (written back as no key at all)."""

    _instance: "_Absent | None" = None

    def __new__(cls) -> "_Absent":
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()


def optional(**kw: Any) -> Any:
    """A field whose key a results file may lack (``ABSENT`` when it does)."""
    return field(default=ABSENT, metadata={"optional": True, **kw.pop("metadata", {})}, **kw)


def key(json_key: str, **kw: Any) -> Any:
    """A field stored under ``json_key`` (e.g. ``lambda``, a Python keyword)."""
    return field(metadata={"key": json_key, **kw.pop("metadata", {})}, **kw)


class ResultsSchemaError(ValueError):
    """A results file that does not match its schema; the message names the notebook to rerun."""


@dataclass(frozen=True)
class Source:
    """Where a dict being read comes from: for error messages."""

    file: str
    notebook: str
    profile: str | None = None

    def rerun(self) -> str:
        profile = self.profile or "<profile>"
        return f"rerun notebook {self.notebook} (python run_all.py --profile {profile} --only {self.notebook})"


def _fail(src: Source | None, path: str, what: str) -> ResultsSchemaError:
    if src is None:
        return ResultsSchemaError(f"{what} (at {path or 'top level'})")
    return ResultsSchemaError(f"{src.file}: {what} (at {path or 'top level'}); it was written by other code: {src.rerun()}")


R = TypeVar("R", bound="Record")


@dataclass(kw_only=True)
class Record:
    """A typed part of a results file."""

    EXTRA_FIELD: ClassVar[str | None] = None
    EXTRA_PATTERN: ClassVar[str] = r".*"

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any], *, source: Source | None = None, path: str = "") -> R:
        if not isinstance(data, Mapping):
            raise _fail(source, path, f"expected an object for {cls.__name__}, found {type(data).__name__}")
        specs = _specs(cls)
        by_key = {s.json_key: s for s in specs}
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        for k, v in data.items():
            if k in by_key:
                s = by_key[k]
                kwargs[s.name] = _read(s.hint, v, source, _join(path, k))
            elif cls.EXTRA_FIELD is not None and re.fullmatch(cls.EXTRA_PATTERN, k):
                extra[k] = v
            else:
                raise _fail(source, path, f"unknown key {k!r} in {cls.__name__} (known: {', '.join(by_key)})")
        missing = [s.json_key for s in specs if s.required and s.name not in kwargs and s.name != cls.EXTRA_FIELD]
        if missing:
            raise _fail(source, path, f"missing key{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))} in {cls.__name__}")
        if cls.EXTRA_FIELD is not None:
            kwargs[cls.EXTRA_FIELD] = extra
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for s in _specs(type(self)):
            value = getattr(self, s.name)
            if s.name == self.EXTRA_FIELD:
                out.update(value)
            elif value is not ABSENT:
                out[s.json_key] = _write(value)
        return out


@dataclass(kw_only=True)
class StageResults(Record):
    """One results file: ``results/<profile>/<FILE>``, written by notebook ``NOTEBOOK``.

    ``SCHEMA_VERSION`` goes up whenever a key changes; a file with an older (or no)
    ``schema_version`` is refused with the command that rewrites it.
    """

    FILE: ClassVar[str]
    NOTEBOOK: ClassVar[str]
    SCHEMA_VERSION: ClassVar[int] = 1

    schema_version: int = -1  # set to SCHEMA_VERSION in __post_init__ when not given
    profile: str
    config_hash: str
    # the config sections and upstream results this file was made from (ssae_utils.lineage);
    # stamped by write_results, checked by read_stage
    lineage: dict[str, Any] = optional()

    def __post_init__(self) -> None:
        if self.schema_version == -1:
            self.schema_version = type(self).SCHEMA_VERSION

    @classmethod
    def create(cls: type[R], fields: Mapping[str, Any]) -> R:
        """This stage's results from JSON-shaped ``fields`` (every key but ``schema_version``),
        checked against the schema like a file: how a stage that builds its results as a
        dict writes them through the schema."""
        if "schema_version" in fields:
            raise ValueError("create() stamps the current schema_version itself")
        return cls.from_dict({"schema_version": cls.SCHEMA_VERSION, **fields})  # type: ignore[attr-defined]

    @classmethod
    def source(cls, profile: str | None = None) -> Source:
        return Source(cls.FILE, cls.NOTEBOOK, profile)

    @classmethod
    def from_dict(cls: type[R], data: Mapping[str, Any], *, source: Source | None = None, path: str = "") -> R:
        if source is None:
            profile = data.get("profile") if isinstance(data, Mapping) else None
            source = cls.source(profile if isinstance(profile, str) else None)  # type: ignore[attr-defined]
        if isinstance(data, Mapping):
            found = data.get("schema_version")
            want = cls.SCHEMA_VERSION  # type: ignore[attr-defined]
            if found != want:
                if isinstance(found, int) and not isinstance(found, bool) and found > want:
                    raise ResultsSchemaError(
                        f"{source.file} has schema version {found}, newer than this code's {want}: update the "
                        f"code, or {source.rerun()}")
                label = "no schema_version" if found is None else f"schema version {found!r}"
                raise ResultsSchemaError(
                    f"{source.file} has {label}; this code reads version {want}. It was written by an older "
                    f"version of notebook {source.notebook}: {source.rerun()}")
        return super().from_dict(data, source=source, path=path)  # type: ignore[misc]


# ------------------------------------------------------------------ field machinery
@dataclass(frozen=True)
class _Spec:
    name: str
    json_key: str
    hint: Any
    required: bool


@lru_cache(maxsize=None)
def _specs(cls: type) -> tuple[_Spec, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        required = not f.metadata.get("optional") and f.default is dataclasses.MISSING \
            and f.default_factory is dataclasses.MISSING  # type: ignore[misc]
        if f.name == "schema_version":
            required = True
        out.append(_Spec(f.name, f.metadata.get("key", f.name), hints[f.name], required))
    return tuple(out)


def _join(path: str, k: Any) -> str:
    return f"{path}.{k}" if path else str(k)


def _is_typed(hint: Any) -> bool:
    return isinstance(hint, type) and hasattr(hint, "from_dict") and hasattr(hint, "to_dict")


def _read(hint: Any, value: Any, src: Source | None, path: str) -> Any:
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        typed = [a for a in args if a is not type(None)]
        return _read(typed[0], value, src, path) if len(typed) == 1 else value
    if _is_typed(hint):
        if issubclass(hint, Record):
            return hint.from_dict(value, source=src, path=path)
        try:
            return hint.from_dict(value)
        except (TypeError, ValueError, KeyError) as err:
            raise _fail(src, path, f"not a valid {hint.__name__}: {err}") from err
    if origin is dict and len(args) == 2 and _needs_reading(args[1]):
        if not isinstance(value, Mapping):
            raise _fail(src, path, f"expected an object, found {type(value).__name__}")
        return {k: _read(args[1], v, src, _join(path, k)) for k, v in value.items()}
    if origin is list and args and _needs_reading(args[0]):
        if not isinstance(value, list):
            raise _fail(src, path, f"expected a list, found {type(value).__name__}")
        return [_read(args[0], v, src, f"{path}[{i}]") for i, v in enumerate(value)]
    return value


def _needs_reading(hint: Any) -> bool:
    if _is_typed(hint):
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_needs_reading(a) for a in args)
    if origin is dict and len(args) == 2:
        return _needs_reading(args[1])
    if origin is list and args:
        return _needs_reading(args[0])
    return False


def _write(value: Any) -> Any:
    if hasattr(value, "to_dict") and callable(value.to_dict) and not isinstance(value, Mapping):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: _write(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_write(v) for v in value]
    return value
