"""EPCIS 2.0 documents (``EPCISDocument``, ``EPCISQueryDocument``): strict import through the SDK's JSON parser,
export equal to the input, canonical bytes.

>>> doc = load_document('{"@context": "https://ref.gs1.org/standards/epcis/2.0.0/epcis-context.jsonld",'
...     ' "type": "EPCISDocument", "schemaVersion": "2.0", "creationDate": "2024-06-15T09:00:00Z",'
...     ' "epcisBody": {"eventList": []}}')
>>> doc.type, doc.events
('EPCISDocument', ())
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from shancheng.sdk import strict_json
from shancheng.sdk.epcis.events import (
    _KINDS,
    EVENT_TYPES,
    EPCISError,
    EPCISEvent,
    _export,
    _extensions,
    _fail,
    _object,
    _string,
    event_from_json,
)
from shancheng.sdk.records import canonical_json

__all__ = ["MAX_DEPTH", "MAX_DOCUMENT_SIZE", "EPCISDocument", "dumps", "load_document", "loads"]

MAX_DOCUMENT_SIZE = 16 * 1024 * 1024
"""Largest EPCIS document :func:`loads` accepts, in bytes of UTF-8."""
MAX_DEPTH = 32
"""Deepest nesting of arrays/objects :func:`loads` accepts (the GS1 examples reach 9)."""

_DOCUMENT_FIELDS = (  # (JSON key, attribute, kind) on EPCISDocument and EPCISQueryDocument
    ("@context", "context", "context"),
    ("id", "id", "str"),
    ("schemaVersion", "schema_version", "str"),
    ("creationDate", "creation_date", "time"),
    ("instanceIdentifier", "instance_identifier", "str"),
    ("sender", "sender", "str"),
    ("receiver", "receiver", "str"),
    ("epcisHeader", "epcis_header", "obj"),
)
_QUERY_ONLY = {"instanceIdentifier", "sender", "receiver", "epcisHeader"}


@dataclass(frozen=True, kw_only=True)
class EPCISDocument:
    """An ``EPCISDocument`` (``type``) or an ``EPCISQueryDocument`` holding a list of events."""

    type: str
    context: Any
    events: tuple[EPCISEvent, ...]
    id: str | None = None
    schema_version: str | None = None
    creation_date: str | None = None
    instance_identifier: str | None = None
    sender: str | None = None
    receiver: str | None = None
    epcis_header: Mapping[str, Any] | None = None
    query_name: str | None = None
    """EPCISQueryDocument only: ``epcisBody.queryResults.queryName``."""
    subscription_id: str | None = None
    vocabulary_list: Any = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    """Namespaced extension fields at the top level, verbatim."""
    body_extensions: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Extension fields inside ``epcisBody`` / ``queryResults`` / ``resultsBody``, by that name."""

    def to_json(self) -> dict[str, Any]:
        """The document as EPCIS 2.0 JSON-LD: equal to what it was parsed from (a fresh copy)."""
        out: dict[str, Any] = {"type": self.type}
        for key, attr, _ in _DOCUMENT_FIELDS:
            value = getattr(self, attr)
            if value is not None:
                out[key] = _export(value)
        out.update(_export(dict(self.extensions)))
        events = [event.to_json() for event in self.events]
        ext = {name: _export(dict(values)) for name, values in self.body_extensions.items()}
        if self.type == "EPCISDocument":
            out["epcisBody"] = {"eventList": events, **ext.get("epcisBody", {})}
            return out
        results: dict[str, Any] = {"eventList": events, **ext.get("resultsBody", {})}
        if self.vocabulary_list is not None:
            results["vocabularyList"] = _export(self.vocabulary_list)
        query: dict[str, Any] = {"queryName": self.query_name, "resultsBody": results, **ext.get("queryResults", {})}
        if self.subscription_id is not None:
            query["subscriptionID"] = self.subscription_id
        out["epcisBody"] = {"queryResults": query, **ext.get("epcisBody", {})}
        return out

    def standalone(self, event: EPCISEvent) -> EPCISEvent:
        """``event`` as a single JSON-LD event: with this document's ``@context`` when it has none of its own."""
        if event.context is not None:
            return event
        return replace(event, context=self.context)

    def canonical_bytes(self) -> bytes:
        """RFC 8785 bytes of :meth:`to_json` (at most the SDK's record size)."""
        return canonical_json(self.to_json())


def _event_list(value: Any, path: str) -> tuple[EPCISEvent, ...]:
    if not isinstance(value, list):
        raise _fail(path, "must be an array of events")
    return tuple(event_from_json(item, f"{path}[{i}]") for i, item in enumerate(value))


def _document(obj: dict[str, Any]) -> EPCISDocument:
    kind = obj["type"]
    query = kind == "EPCISQueryDocument"
    spec = [f for f in _DOCUMENT_FIELDS if not (query and f[0] in _QUERY_ONLY)]
    required = ("@context", "epcisBody") if query else ("@context", "schemaVersion", "creationDate", "epcisBody")
    for key in required:
        if key not in obj:
            raise _fail("$", f"missing field {key!r}")
    values: dict[str, Any] = {"type": kind}
    for key, attr, kind_name in spec:
        if key in obj:
            values[attr] = _KINDS[kind_name](obj[key], f"$.{key}")
    values["extensions"] = _extensions(obj, {f[0] for f in spec} | {"type", "epcisBody"}, "$")
    body = _object(obj["epcisBody"], "$.epcisBody")
    ext: dict[str, dict[str, Any]] = {}
    if not query:
        if "eventList" not in body:
            raise _fail("$.epcisBody", "missing field 'eventList'")
        values["events"] = _event_list(body["eventList"], "$.epcisBody.eventList")
        ext["epcisBody"] = _extensions(body, {"eventList"}, "$.epcisBody")
    else:
        if "queryResults" not in body:
            raise _fail("$.epcisBody", "missing field 'queryResults'")
        ext["epcisBody"] = _extensions(body, {"queryResults"}, "$.epcisBody")
        path = "$.epcisBody.queryResults"
        results = _object(body["queryResults"], path, ("queryName",))
        if "resultsBody" not in results:
            raise _fail(path, "missing field 'resultsBody'")
        values["query_name"] = results["queryName"]
        if "subscriptionID" in results:
            values["subscription_id"] = _string(results["subscriptionID"], f"{path}.subscriptionID")
        ext["queryResults"] = _extensions(results, {"queryName", "subscriptionID", "resultsBody"}, path)
        path += ".resultsBody"
        inner = _object(results["resultsBody"], path)
        if "eventList" not in inner:
            raise _fail(path, "missing field 'eventList'")
        values["events"] = _event_list(inner["eventList"], f"{path}.eventList")
        if "vocabularyList" in inner:
            values["vocabulary_list"] = inner["vocabularyList"]
        ext["resultsBody"] = _extensions(inner, {"eventList", "vocabularyList"}, path)
    values["body_extensions"] = {name: extra for name, extra in ext.items() if extra}
    return EPCISDocument(**values)


def loads(data: str | bytes) -> EPCISDocument | EPCISEvent:
    """Parse EPCIS 2.0 JSON / JSON-LD: an ``EPCISDocument``, an ``EPCISQueryDocument`` or one event.

    Strict: at most :data:`MAX_DOCUMENT_SIZE` bytes and :data:`MAX_DEPTH` levels, no duplicate keys,
    required fields present and well-typed. Raises :class:`EPCISError` naming the JSON path.
    """
    obj = strict_json.loads(data, what="EPCIS document", error=EPCISError, max_size=MAX_DOCUMENT_SIZE,
                            max_depth=MAX_DEPTH)
    if not isinstance(obj, dict):
        raise _fail("$", "an EPCIS document must be a JSON object")
    if "type" not in obj:
        raise _fail("$", "missing field 'type'")
    if obj["type"] in ("EPCISDocument", "EPCISQueryDocument"):
        return _document(obj)
    if "@context" not in obj and obj["type"] in EVENT_TYPES:
        raise _fail("$", "missing field '@context' (a single JSON-LD event needs its own)")
    return event_from_json(obj)


def load_document(data: str | bytes) -> EPCISDocument:
    """Like :func:`loads`, but refuses anything other than an ``EPCISDocument`` or ``EPCISQueryDocument``."""
    doc = loads(data)
    if not isinstance(doc, EPCISDocument):
        raise _fail("$.type", f"expected an EPCISDocument or EPCISQueryDocument, not a single {doc.type}")
    return doc


def dumps(value: EPCISDocument | EPCISEvent, *, indent: int | None = None) -> str:
    """``value`` as EPCIS 2.0 JSON text (UTF-8 characters kept as they are)."""
    return json.dumps(value.to_json(), ensure_ascii=False, indent=indent)
