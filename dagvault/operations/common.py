"""What every operation's options share: strict fields and text that can be stored."""

from __future__ import annotations

import dataclasses
from typing import Any, TypeVar, get_type_hints

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator

from dagvault.errors import ConfigError

MAX_PATH_CHARS = 4096


def encodable(text: str) -> bool:
    """JSON can carry lone surrogates, which no file name, table name or log line can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


class Options(BaseModel):
    """An operation's options. Unknown fields are refused (a typo such as ``backup_pth``
    must not silently back up into the default place); every string is bounded."""

    # Built on first use: a command builds the one or two models it uses, not all of them
    # (building every schema at import cost a tenth of a second per CLI call).
    model_config = ConfigDict(extra="forbid", defer_build=True)

    @field_validator("*")
    @classmethod
    def _utf8_text(cls, value: Any) -> Any:
        for text in value if isinstance(value, list) else [value]:
            if isinstance(text, str) and not encodable(text):
                raise ValueError("must be valid Unicode text (no lone surrogates)")
        return value

    def flow_parameters(self) -> dict[str, Any]:
        """The flow's parameters of the same names."""
        return self.model_dump()


OptionsT = TypeVar("OptionsT", bound="Options")


def parse_options(model: type[OptionsT], **values: Any) -> OptionsT:
    """``model`` from a command line's values; a value it refuses is a ConfigError (exit 2)
    naming the option, not a pydantic traceback."""
    try:
        return model(**values)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"])
        raise ConfigError(
            f"Invalid {where}: {problem['msg']}", "See the command's --help."
        ) from None


class Result(BaseModel):
    """An operation's result: typed where the docs type it; fields a later format adds
    pass through, so `--json` and the API never drop what a flow reported. Its JSON
    document, ``model_dump(mode="json")``, is what `--json` prints and the API answers as
    ``data.result`` (every field; an optional one the flow did not report is null)."""

    model_config = ConfigDict(extra="allow", defer_build=True)


def model_of(source: type, name: str, doc: str, **more: Any) -> type[Result]:
    """A result model typed as the core dataclass ``source`` (its field names, types and
    defaults) plus ``more`` (pydantic's ``(type, default)`` pairs): the core keeps the one
    definition of a report, the front ends validate and document it."""
    hints = get_type_hints(source)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(source):
        default: Any = ...
        if field.default is not dataclasses.MISSING:
            default = field.default
        elif field.default_factory is not dataclasses.MISSING:
            default = Field(default_factory=field.default_factory)
        fields[field.name] = (hints[field.name], default)
    return create_model(  # type: ignore[no-any-return,call-overload]
        name, __base__=Result, __doc__=doc, __module__="dagvault.operations", **fields, **more
    )
