"""How the MCP tools check their arguments: every one must be the tool's own, and each bad one comes back as a tool
error naming it and what is wrong, in words a model can act on (the REST API refuses unknown fields too)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from mcp.server.mcpserver.exceptions import ToolError
from mcp.server.mcpserver.tools import Tool
from mcp_types import ToolAnnotations
from pydantic import ConfigDict, ValidationError

from gateway.bodies import field_path


def argument_problems(tool: str, takes: list[str], exc: ValidationError) -> str:
    """Each bad argument on a line of its own, in words a model can act on; pydantic's own text adds input types
    and a link per error, which only its authors read."""
    problems = []
    for error in exc.errors(include_url=False):
        where = field_path(error["loc"]) or "arguments"
        if error["type"] == "extra_forbidden":
            problems.append(f"{where}: not an argument of {tool} (it takes {', '.join(takes)})")
        else:
            problems.append(f"{where}: {error['msg'].removeprefix('Value error, ')}")
    return "\n".join(problems)


class StrictTool(Tool):
    """A tool whose arguments must all be its own (its schema says additionalProperties: false): a misspelt one,
    ``filter`` for ``filters``, is an error the caller can correct, as in the REST API, not silently ignored. Bad
    arguments come back as a tool error (``isError``) naming each one and what is wrong with it."""

    @classmethod
    def strict(cls, fn: Callable[..., Any], annotations: ToolAnnotations) -> StrictTool:
        tool = cls.from_function(fn, annotations=annotations)
        loose = tool.fn_metadata.arg_model
        strict = type(loose.__name__, (loose,), {"model_config": ConfigDict(**loose.model_config, extra="forbid")})
        tool.fn_metadata.arg_model = strict
        tool.parameters = strict.model_json_schema(by_alias=True)
        return tool

    async def run(self, arguments: dict[str, Any], context: Any, convert_result: bool = False) -> Any:
        try:
            self.fn_metadata.validate_arguments(arguments)
        except ValidationError as exc:
            takes = list(self.parameters.get("properties", {}))
            problems = argument_problems(self.name, takes, exc)
            raise ToolError(f"Error executing tool {self.name}: invalid arguments\n{problems}") from None
        return await super().run(arguments, context, convert_result)
