"""Check parameters against a model before any SQL runs, and turn values into bind values."""

from __future__ import annotations

import copy
import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from dataflow_nb.core.masking import MASK, mask_values
from dataflow_nb.core.spec import MISSING, Field, ModelSpec
from dataflow_nb.exceptions import ValidationError
from dataflow_nb.model.notebook_values import preview, python_value, to_python


def check_known(owner: ModelSpec | str, names: Iterable[str], valid: Iterable[str], what: str = "field") -> None:
    """Raise a ValidationError naming every unknown name and listing the valid ones.

    ``owner`` is the model (or a label such as ``"table users"``) the names belong to.
    """
    valid = valid if isinstance(valid, tuple | list) else list(valid)
    unknown = [n for n in names if n not in valid]
    if not unknown:
        return
    valid = list(valid)
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(str(name), valid, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    label = owner if isinstance(owner, str) else f"model {owner.name}"
    raise ValidationError(
        f"{label}: unknown {what}{'s' if len(unknown) > 1 else ''} {', '.join(hints)}; valid {what}s are {valid}"
    )


def to_wire(model: ModelSpec, name: str, value: Any) -> Any:
    """One value checked against its field and converted to what the driver binds.

    numpy and pandas scalars count as the Python values they stand for (``notebook_values``).
    A value shown in a message is a short preview, and ``***`` for a sensitive field.
    """
    f = model.fields[name]
    given = value
    try:
        value = to_python(value)
        if value is None:
            if not f.nullable:
                raise ValidationError(
                    f"model {model.name}: field {name!r} is not nullable; "
                    f"give a {f.type.label} or declare it Optional[...]"
                )
            return None
        return f.type.to_wire(value)
    except TypeError:
        raise ValidationError(
            f"model {model.name}: field {name!r} expects {f.label}, "
            f"got {_shown(f, given)} of type {type(value).__name__}"
        ) from None
    except (ValueError, OverflowError) as exc:
        reason = mask_values(str(exc), [value]) if f.sensitive else str(exc)
        raise ValidationError(f"model {model.name}: field {name!r}: value {_shown(f, given)} {reason}") from None


def _shown(f: Field, value: Any) -> str:
    """A value as an error shows it: a short preview, ``***`` for a sensitive field (made only on error)."""
    return MASK if f.sensitive else preview(value)


def record_values(model: ModelSpec, params: Mapping[str, Any], *, partial: bool = False) -> dict[str, Any]:
    """Validate a record for insert (``partial=False``) or update (``partial=True``).

    Returns the bind values in model order; for inserts, defaults fill missing fields.
    """
    check_known(model, params, model.writable)
    errors: list[str] = []
    values: dict[str, Any] = {}
    for name, f in model.fields.items():
        if name == "id":
            continue
        if name in params:
            value = params[name]
        elif partial or f.managed:
            continue
        elif f.default is not MISSING:
            value = copy.deepcopy(f.default)
        elif f.nullable:
            value = None
        else:
            errors.append(f"missing required field {name!r} ({f.label})")
            continue
        try:
            values[name] = to_wire(model, name, value)
        except ValidationError as exc:
            errors.append(str(exc).removeprefix(f"model {model.name}: "))
    if errors:
        raise ValidationError(f"model {model.name}: " + "; ".join(errors))
    return values


def record_id(model: ModelSpec, params: Mapping[str, Any], node: str) -> int:
    """The ``id`` parameter of Read/Update/Delete, checked."""
    if "id" not in params:
        raise ValidationError(f"{node}: parameter 'id' is required (the {model.name} to act on)")
    value = params["id"]
    if type(value) is int:
        return value
    value = python_value(f"{node}: parameter 'id'", value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(f"{node}: 'id' must be an int, got {preview(value)} of type {type(value).__name__}")
    return value
