"""YAML as people's settings files are read: safe, a key given twice is an error, and no anchors or aliases.

A second `rules:` silently replaced the first (the rules it disabled ran again), and a few hundred bytes of nested
aliases (a "billion laughs") expand to gigabytes before any check sees them. Settings, themes and users files need
neither, so both are refused with the line they are on.
"""

from __future__ import annotations

import yaml


class StrictYamlError(yaml.YAMLError):
    """A key given twice, or an anchor or alias; its message names the line."""


class _Strict(yaml.SafeLoader):
    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise StrictYamlError(f"line {event.start_mark.line + 1}: an alias (*{event.anchor}): write the value out")
        event = self.peek_event()
        if getattr(event, "anchor", None):
            raise StrictYamlError(f"line {event.start_mark.line + 1}: an anchor (&{event.anchor}): write the value out")
        return super().compose_node(parent, index)

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if not isinstance(key, (str, int, float, bool, type(None))) and not hasattr(key, "isoformat"):
                raise StrictYamlError(f"line {key_node.start_mark.line + 1}: a key must be a plain value, not a list or mapping")
            if key in seen:
                raise StrictYamlError(f"line {key_node.start_mark.line + 1}: {str(key)[:80]!r} is given twice")
            seen.add(key)
        return super().construct_mapping(node, deep)


def load(text: str):
    """The document in `text`; raises StrictYamlError (a yaml.YAMLError) for a repeated key, anchor or alias."""
    return yaml.load(text, Loader=_Strict)  # noqa: S506 (a SafeLoader)
