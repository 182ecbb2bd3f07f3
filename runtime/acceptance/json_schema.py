"""The validator ``json_schema`` assertions run: no retrieval, linear-time patterns.

jsonschema resolves a ``$ref`` it does not hold by fetching it (``http://``, ``file://``); here
the registry refuses every retrieval, so only the schema itself is ever read (validate refuses
such references up front: ``spec.json_schema``). ``pattern``, ``patternProperties`` and
``additionalProperties`` match with Polars' Rust engine, as cleaning and ``regex`` assertions
do, so a model's output cannot make a pattern backtrack for ever.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any


def _search(pattern: str, text: str) -> bool:
    import polars as pl

    from llmspec.spec.regex import rust_syntax

    return bool(pl.Series([text], dtype=pl.String).str.contains(rust_syntax(pattern)).item())


def _pattern(validator, pattern, instance, schema):
    from jsonschema.exceptions import ValidationError

    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator, pattern_properties, instance, schema):
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in pattern_properties.items():
        for k, v in instance.items():
            if _search(pattern, k):
                yield from validator.descend(v, subschema, path=k, schema_path=pattern)


def _additional_properties(validator, additional, instance, schema):
    from jsonschema.exceptions import ValidationError

    if not validator.is_type(instance, "object"):
        return
    properties = schema.get("properties", {})
    patterns = list(schema.get("patternProperties", {}))
    extras = [k for k in instance if k not in properties and not any(_search(p, k) for p in patterns)]
    if validator.is_type(additional, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], additional, path=extra)
    elif not additional and extras:
        if patterns:
            listed = ", ".join(repr(p) for p in sorted(patterns))
            yield ValidationError(f"{', '.join(repr(e) for e in sorted(extras))} "
                                  f"{'does' if len(extras) == 1 else 'do'} not match any of the regexes: {listed}")
        else:
            yield ValidationError(f"Additional properties are not allowed ({', '.join(repr(e) for e in sorted(extras))} "
                                  f"{'was' if len(extras) == 1 else 'were'} unexpected)")


def _refuse_retrieval(uri: str):
    from referencing.exceptions import NoSuchResource

    raise NoSuchResource(ref=uri)


@lru_cache(maxsize=None)
def _linear_class(base):
    from jsonschema.validators import extend

    return extend(base, {"pattern": _pattern, "patternProperties": _pattern_properties,
                         "additionalProperties": _additional_properties})


def linear_validator(schema: dict) -> Any:
    """A validator for ``schema`` that reads nothing but the schema and matches in linear time."""
    from jsonschema.validators import validator_for
    from referencing import Registry

    base = validator_for(schema)
    cls = _linear_class(base)
    return cls(schema, registry=Registry(retrieve=_refuse_retrieval),
               format_checker=getattr(base, "FORMAT_CHECKER", None))


__all__ = ["linear_validator"]
