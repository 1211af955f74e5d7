"""Dynamo: where its graph's inputs come from.

Dynamo writes where a value comes from as a Source, which names itself as the guards read it
(`L['self']._modules['conv1']._parameters['weight']`, `L['x']`): `source.name()` (a method
on the supported releases; a property on some earlier ones). A placeholder holds its Source in
`node.meta["grapharg"]` (a GraphArg) or `node._dynamo_source`, the graph module those of its
attributes in `_param_name_to_source`. Nothing is imported: these are read off what Dynamo
hands the backend.
"""

from __future__ import annotations


def _source_text(source) -> str | None:
    name = getattr(source, "name", None)
    try:
        text = name() if callable(name) else name
    except Exception:  # noqa: BLE001 - a source that cannot name itself
        return None
    return text if isinstance(text, str) and text else None


def input_source(node) -> str | None:
    """Where a placeholder of Dynamo's graph comes from, as Dynamo writes it: the source of
    its `node.meta["grapharg"]` (a GraphArg), else of `node._dynamo_source`; None if neither."""
    grapharg = node.meta.get("grapharg")
    source = getattr(grapharg, "source", None) or getattr(node, "_dynamo_source", None)
    return _source_text(source)


def attribute_sources(gm) -> dict[str, str]:
    """For the tensors Dynamo's graph reads as attributes (`get_attr`: a compiled optimizer
    step's parameters and state), attribute name -> where it comes from, as Dynamo writes it:
    the graph module's `_param_name_to_source`."""
    sources = getattr(gm, "_param_name_to_source", None) or {}
    return {name: text for name, s in sources.items() if (text := _source_text(s))}
