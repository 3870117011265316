"""The options of ``capture``, checked once at decoration."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .._redact import parse_paths
from ..exceptions import ConfigError

__all__ = ["ID_MODES", "Settings", "check_excluded"]

ID_MODES = ("hash", "hash+time", "random")


@dataclass(frozen=True, slots=True)
class Settings:
    """The checked options of one ``capture``; shared, never changed."""

    recorder: Any
    model_version_fqn: str | None
    features: Callable[..., Any] | None
    outputs: Callable[..., Any] | None
    id: str | Callable[[dict[str, Any]], str]
    feature_names: tuple[str, ...] | None
    class_names: tuple[Any, ...] | None
    model: Any
    exclude_args: tuple[str, ...]
    redact: tuple[str, ...]
    record_errors: bool

    @classmethod
    def check(cls, **options: Any) -> Settings:
        """Check every option; raise ConfigError naming a bad one."""
        recorder = options["recorder"]
        if recorder is not None and not callable(getattr(recorder, "record", None)):
            raise ConfigError(
                f"recorder must be a Recorder, not {type(recorder).__name__}"
            )

        fqn = options["model_version_fqn"]
        if fqn is not None and (not isinstance(fqn, str) or not fqn):
            raise ConfigError("model_version_fqn must be a non-empty string")

        for name in ("features", "outputs"):
            hook = options[name]
            if hook is not None and not callable(hook):
                raise ConfigError(f"{name} must be a callable or None")

        options["id"] = check_id(options["id"])
        for name in ("feature_names", "class_names"):
            options[name] = check_names(options[name], name)
        for name in ("exclude_args", "redact"):
            options[name] = check_strings(options[name], name)
        parse_paths(tuple(options["redact"]))  # the recorder's own check

        if not isinstance(options["record_errors"], bool):
            raise ConfigError("record_errors must be True or False")

        return cls(**options)


def check_id(mode: Any) -> Any:
    """Check ``id=``: a known mode or a callable."""
    if callable(mode) or (isinstance(mode, str) and mode in ID_MODES):
        return mode
    if isinstance(mode, str) and mode.startswith(("header:", "field:")):
        raise ConfigError(
            f"id={mode!r} takes the id from a request: only "
            "PredictionLoggingMiddleware supports it"
        )

    raise ConfigError(
        f"id must be 'hash', 'hash+time', 'random' or a callable, not {mode!r}"
    )


def check_names(value: Any, option: str) -> tuple[Any, ...] | None:
    """Check a list of column or class names; keep it as a tuple."""
    if value is None:
        return None
    tolist = getattr(value, "tolist", None)  # a numpy array of labels
    if callable(tolist):
        value = tolist()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise ConfigError(f"{option} must be a list of names, not one value")

    names = tuple(value)
    if not names:
        raise ConfigError(f"{option} must not be empty")
    if len(set(map(repr, names))) != len(names):
        raise ConfigError(f"{option} has duplicate names")
    if option == "feature_names" and not all(isinstance(n, str) for n in names):
        raise ConfigError("feature_names must be strings")

    return names


def check_strings(value: Any, option: str) -> tuple[str, ...]:
    """Check a list of non-empty strings; keep it as a tuple."""
    if isinstance(value, str) or not isinstance(value, Iterable):
        raise ConfigError(f"{option} must be a list of strings, not one value")

    items = tuple(value)
    if not all(isinstance(item, str) and item for item in items):
        raise ConfigError(f"{option} must hold non-empty strings")

    return items


def check_excluded(target: Any, exclude_args: tuple[str, ...]) -> None:
    """Refuse ``exclude_args`` naming an argument ``target`` cannot take."""
    if not exclude_args:
        return
    try:
        parameters = inspect.signature(target).parameters
    except (TypeError, ValueError):  # no signature to check against
        return

    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return
    for name in exclude_args:
        if name not in parameters:
            raise ConfigError(
                f"exclude_args names {name!r}, which the function does not take"
            )
