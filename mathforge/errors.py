"""Input errors that name the file, the line and the key, a bounded YAML loader and YAML line maps (exit code 2)."""
from __future__ import annotations

import yaml
from yaml.composer import ComposerError
from yaml.events import AliasEvent, MappingEndEvent, MappingStartEvent, ScalarEvent, SequenceEndEvent
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

# A YAML document is refused past these bounds: anchors and aliases are fine in small numbers (a shared model
# spec), but "billion laughs" documents expand a few hundred bytes into billions of nodes.
YAML_MAX_ALIASES = 100           # alias uses (`*name`) per document
YAML_MAX_NODES = 100_000         # nodes of the document with every alias expanded
YAML_MAX_DEPTH = 100             # nested mappings and sequences
YAML_MAX_BYTES = 1_000_000       # characters of a document
MERGE_TAG = "tag:yaml.org,2002:merge"


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


class BoundedLoader(yaml.SafeLoader):
    """yaml.SafeLoader that refuses duplicate keys, recursive aliases, and alias use past the budgets above.

    The budgets are counted while the document is composed, so a bomb is refused before it is expanded."""

    def __init__(self, stream, file: str = "<yaml>"):
        super().__init__(stream)
        self.file = file
        self.aliases = 0
        self.expanded = 0                 # nodes so far, each alias counting its anchor's whole (expanded) tree
        self.sizes: dict[str, int] = {}   # anchor -> expanded node count of its tree
        self.open: set[str] = set()       # anchors whose node is still being composed
        self.path: list = []

    def where(self) -> str:
        return ".".join(str(p) for p in self.path) or "(root)"

    def refuse(self, message: str, mark, key: str | None = None) -> InputError:
        return InputError(message, self.file, mark.line + 1 if mark else None, key or self.where())

    def compose_node(self, parent, index):
        if self.check_event(AliasEvent):
            event = self.get_event()
            anchor = event.anchor
            if anchor in self.open:
                raise self.refuse(f"recursive alias *{anchor} (it refers to a node that contains it)",
                                  event.start_mark)
            if anchor not in self.anchors:
                raise ComposerError(None, None, f"found undefined alias {anchor!r}", event.start_mark)
            self.aliases += 1
            self.expanded += self.sizes.get(anchor, 1)
            if self.aliases > YAML_MAX_ALIASES:
                raise self.refuse(f"more than {YAML_MAX_ALIASES} alias uses (`*name`) in one document",
                                  event.start_mark)
            if self.expanded > YAML_MAX_NODES:
                raise self.refuse(f"aliases expand the document past {YAML_MAX_NODES:,} nodes (an alias bomb?)",
                                  event.start_mark)
            return self.anchors[anchor]
        event = self.peek_event()
        if len(self.path) >= YAML_MAX_DEPTH:
            raise self.refuse(f"nested deeper than {YAML_MAX_DEPTH} levels", event.start_mark)
        anchor = event.anchor
        if anchor is not None and anchor in self.anchors:
            raise ComposerError("found duplicate anchor %r; first occurrence" % anchor,
                                              self.anchors[anchor].start_mark, "second occurrence", event.start_mark)
        start = self.expanded
        self.expanded += 1
        if self.expanded > YAML_MAX_NODES:
            raise self.refuse(f"the document has more than {YAML_MAX_NODES:,} nodes", event.start_mark)
        if anchor is not None:
            self.open.add(anchor)
        self.descend_resolver(parent, index)
        if self.check_event(ScalarEvent):
            node = self.compose_scalar_node(anchor)
        elif self.check_event(MappingStartEvent):
            node = self.compose_mapping_node(anchor)
        else:
            node = self.compose_sequence_node(anchor)
        self.ascend_resolver()
        if anchor is not None:
            self.open.discard(anchor)
            self.sizes[anchor] = self.expanded - start
        return node

    def compose_sequence_node(self, anchor):
        start_event = self.get_event()
        tag = start_event.tag
        if tag is None or tag == "!":
            tag = self.resolve(SequenceNode, None, start_event.implicit)
        node = SequenceNode(tag, [], start_event.start_mark, None, flow_style=start_event.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        while not self.check_event(SequenceEndEvent):
            self.path.append(len(node.value))
            node.value.append(self.compose_node(node, len(node.value)))
            self.path.pop()
        node.end_mark = self.get_event().end_mark
        return node

    def compose_mapping_node(self, anchor):
        start_event = self.get_event()
        tag = start_event.tag
        if tag is None or tag == "!":
            tag = self.resolve(MappingNode, None, start_event.implicit)
        node = MappingNode(tag, [], start_event.start_mark, None, flow_style=start_event.flow_style)
        if anchor is not None:
            self.anchors[anchor] = node
        seen: dict[tuple, int] = {}
        while not self.check_event(MappingEndEvent):
            item_key = self.compose_node(node, None)
            name = item_key.value if isinstance(item_key, ScalarNode) else "?"
            if isinstance(item_key, ScalarNode) and item_key.tag != MERGE_TAG:
                line = item_key.start_mark.line + 1
                if (item_key.tag, name) in seen:
                    raise self.refuse(f"duplicate key {name!r}: first at line {seen[item_key.tag, name]}, again at "
                                      f"line {line} (YAML would silently keep only the last)", item_key.start_mark,
                                      ".".join(str(p) for p in [*self.path, name]))
                seen[item_key.tag, name] = line
            self.path.append(name)
            item_value = self.compose_node(node, item_key)
            self.path.pop()
            node.value.append((item_key, item_value))
        node.end_mark = self.get_event().end_mark
        return node


def load_yaml(text: str, file: str) -> tuple[object, yaml.Node | None]:
    """(data, node tree) of one YAML document, parsed once with BoundedLoader; every problem is an InputError.

    Use the node tree for line_map: data and lines then come from the same, bounded, parse."""
    if len(text) > YAML_MAX_BYTES:
        raise InputError(f"the file has {len(text):,} characters; a recipe is at most {YAML_MAX_BYTES:,}", file)
    loader = BoundedLoader(text, file)
    try:
        node = loader.get_single_node()
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        raise yaml_error(exc, file) from None
    except (ValueError, OverflowError, RecursionError) as exc:  # e.g. an integer past Python's digit limit
        raise InputError(f"malformed YAML value: {exc}", file) from None
    finally:
        loader.dispose()
    return data, node


def line_map(node, prefix: tuple = ()) -> dict[tuple, int]:
    """Key path -> 1-based line, for every mapping key and sequence item in the YAML tree.

    Each node is visited once: a subtree reached again through an alias is not expanded (the paths under the
    alias then resolve to the alias's own key), so the map is linear in the document even with aliases, and a
    recursive alias cannot loop."""
    lines: dict[tuple, int] = {}
    if node is not None:
        _map_lines(node, prefix, lines, set())
    return lines


def _map_lines(node, prefix: tuple, lines: dict[tuple, int], seen: set[int]) -> None:
    lines.setdefault(prefix, node.start_mark.line + 1)
    if id(node) in seen:
        return
    seen.add(id(node))
    stack = [(node, prefix)]
    while stack:  # iterative: no recursion limit on deep documents
        current, path = stack.pop()
        if isinstance(current, yaml.MappingNode):
            children = []
            for key, value in current.value:
                child = path + (key.value,)
                lines[child] = key.start_mark.line + 1
                children.append((value, child))
        elif isinstance(current, yaml.SequenceNode):
            children = [(value, path + (index,)) for index, value in enumerate(current.value)]
            for value, child in children:
                lines.setdefault(child, value.start_mark.line + 1)
        else:
            continue
        for value, child in reversed(children):
            if id(value) not in seen:
                seen.add(id(value))
                stack.append((value, child))
