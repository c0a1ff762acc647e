"""How a setting is declared: :func:`setting` and the types of its values (flags, ports, secrets)."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BeforeValidator, Field, SecretStr

PREFIX = "LIKEOPT_"


def setting(default: Any, doc: str, read_by: tuple[str, ...], **rules: Any) -> Any:
    """A field of :class:`Config`: default, meaning, the processes that read it, and its bounds (``ge``,
    ``le``, ...). ``read_by`` decides which settings a process checks at start, so a bad value stops only
    the processes that use it."""
    return Field(default, description=doc, json_schema_extra={"read_by": list(read_by)}, **rules)


def stripped(value: Any) -> Any:
    """Surrounding blanks, which pydantic's own parsing of a flag would refuse, are a typing slip, not a value."""
    return value.strip() if isinstance(value, str) else value


def empty_is_none(value: Any) -> Any:
    """For the optional numbers, an empty variable means what leaving it out means."""
    return None if isinstance(value, str) and not value.strip() else value


Flag = Annotated[bool, BeforeValidator(stripped)]
"""A yes/no setting: 1/0, true/false, yes/no or on/off (any case); anything else is refused."""
Port = Annotated[int, Field(ge=1, le=65535)]
MetricsPort = Annotated[int, Field(ge=0, le=65535)]
"""A Prometheus port; ``0`` turns that endpoint off."""
Secret = Annotated[SecretStr, BeforeValidator(stripped)]
"""A key or token, never printed. Blanks around it are a slip (a header value loses them, so such a key would never
match), and a blank one is no key, as an empty one is."""
