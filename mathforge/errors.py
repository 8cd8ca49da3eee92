"""Input errors that name the file, the line and the key (YAML line maps included), and map to exit code 2."""
from __future__ import annotations

import yaml


class InputError(Exception):
    """Bad user input (recipe, data): reported as `file:line: key: message`, exit code 2."""

    exit_code = 2

    def __init__(self, message: str, file: str | None = None, line: int | None = None, key: str | None = None):
        self.message, self.file, self.line, self.key = message, file, line, key
        super().__init__(self.render())

    def render(self) -> str:
        where = ""
        if self.file:
            where = f"{self.file}:{self.line}: " if self.line else f"{self.file}: "
        return f"{where}{self.key + ': ' if self.key else ''}{self.message}"


def yaml_error(exc, file: str) -> InputError:
    """A YAML parse error as an InputError at the line where the parser stopped."""
    mark = getattr(exc, "problem_mark", None)
    return InputError(f"malformed YAML: {getattr(exc, 'problem', None) or exc}", file,
                      mark.line + 1 if mark else None)


def line_map(node, prefix: tuple = ()) -> dict[tuple, int]:
    """Key path -> 1-based line, for every mapping key and sequence item in the YAML tree."""
    lines: dict[tuple, int] = {prefix: node.start_mark.line + 1} if node is not None else {}
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            path = prefix + (key.value,)
            lines[path] = key.start_mark.line + 1
            lines.update({k: v for k, v in line_map(value, path).items() if k != path})
    elif isinstance(node, yaml.SequenceNode):
        for index, value in enumerate(node.value):
            lines.update(line_map(value, prefix + (index,)))
    return lines
