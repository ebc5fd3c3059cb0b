"""Typed EPCIS 2.0 events: strict import, export equal to the input, canonical bytes.

Each event type is a frozen dataclass whose fields are the EPCIS 2.0 fields of that type (snake_case);
nested structures (readPoint, quantity elements, sensor data, ILMD...) are kept as the JSON they came as.
Fields the standard does not define must be namespaced extensions (``"example:myField"`` or a full URI):
they are kept verbatim in ``extensions``, a bare unknown name (a typo such as ``"eventtime"``) is refused.

>>> event = event_from_json({"type": "ObjectEvent", "action": "OBSERVE", "eventTime": "2024-06-15T09:12:00+08:00",
...                          "eventTimeZoneOffset": "+08:00", "epcList": ["urn:epc:id:sgtin:0614141.107346.2017"]})
>>> event.action, event.trace_codes
('OBSERVE', ('urn:epc:id:sgtin:0614141.107346.2017',))
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar

from shancheng.sdk.errors import InvalidInput
from shancheng.sdk.records import canonical_json

__all__ = [
    "EVENT_TYPES",
    "AggregationEvent",
    "AssociationEvent",
    "EPCISError",
    "EPCISEvent",
    "ObjectEvent",
    "TransactionEvent",
    "TransformationEvent",
    "event_from_json",
]

ACTIONS = frozenset({"ADD", "OBSERVE", "DELETE"})
_TIME = re.compile(r"\A(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(?:\.(\d+))?([Zz]|[+-]\d{2}:\d{2})\Z")
_OFFSET = re.compile(r"\A[+-](?:(?:0\d|1[0-3]):[0-5]\d|14:00)\Z")


class EPCISError(InvalidInput):
    """An EPCIS document or event that is malformed; ``path`` is the JSON path of the problem."""

    def __init__(self, message: str, path: str = "$") -> None:
        self.path = path
        super().__init__(message)

    def diagnostics(self) -> dict[str, Any]:
        return {"path": self.path}


def _fail(path: str, reason: str) -> EPCISError:
    return EPCISError(f"EPCIS {path}: {reason}", path)


def _is_extension(key: str) -> bool:
    """A namespaced extension name: a compact IRI (``prefix:name``) or a full URI."""
    return ":" in key and not key.startswith(":")


# --- field checks: each returns the value as stored on the dataclass -------------------------------------


def _string(value: Any, path: str) -> str:
    if not isinstance(value, str) or not value:
        raise _fail(path, "must be a non-empty string")
    return value


def _time(value: Any, path: str) -> str:
    text = _string(value, path)
    match = _TIME.match(text)
    if match is None:
        raise _fail(path, f"{text[:40]!r} is not an RFC 3339 date-time (like 2024-06-15T09:12:00+08:00)")
    date, clock, fraction, zone = match.groups()
    zone = "+00:00" if zone in "Zz" else zone
    try:
        datetime.fromisoformat(f"{date}T{clock}.{(fraction or '0')[:6]:0<6}{zone}")
    except ValueError:
        raise _fail(path, f"{text[:40]!r} is not a valid date and time") from None
    return text


def _offset(value: Any, path: str) -> str:
    text = _string(value, path)
    if not _OFFSET.match(text):
        raise _fail(path, f"{text[:20]!r} is not a time zone offset from -14:00 to +14:00 (like +08:00)")
    return text


def _action(value: Any, path: str) -> str:
    if value not in ACTIONS:
        raise _fail(path, "must be one of ADD, OBSERVE, DELETE")
    return str(value)


def _strings(value: Any, path: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise _fail(path, "must be an array of strings")
    return tuple(_string(item, f"{path}[{i}]") for i, item in enumerate(value))


def _object(value: Any, path: str, required: tuple[str, ...] = ()) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise _fail(path, "must be an object")
    for key in required:
        if key not in value:
            raise _fail(path, f"missing field {key!r}")
        _string(value[key], f"{path}.{key}")
    return value


def _objects(value: Any, path: str, required: tuple[str, ...] = ()) -> tuple[dict[str, Any], ...]:
    if not isinstance(value, list):
        raise _fail(path, "must be an array of objects")
    return tuple(_object(item, f"{path}[{i}]", required) for i, item in enumerate(value))


def _json(value: Any, path: str) -> Any:
    return value


def _context(value: Any, path: str) -> Any:
    items = value if isinstance(value, list) else [value]
    for i, item in enumerate(items):
        if not (isinstance(item, str) and item or isinstance(item, dict)):
            where = f"{path}[{i}]" if isinstance(value, list) else path
            raise _fail(where, "a JSON-LD @context must be a URI, an object or an array of those")
    return value


_KINDS: dict[str, Any] = {
    "str": _string,
    "time": _time,
    "offset": _offset,
    "action": _action,
    "strs": _strings,
    "obj": _object,
    "json": _json,
    "context": _context,
    "location": lambda v, p: _object(v, p, ("id",)),
    "quantities": lambda v, p: _objects(v, p, ("epcClass",)),
    "transactions": lambda v, p: _objects(v, p, ("bizTransaction",)),
    "sources": lambda v, p: _objects(v, p, ("type", "source")),
    "destinations": lambda v, p: _objects(v, p, ("type", "destination")),
    "error": lambda v, p: _object(v, p, ("declarationTime",)),
    "objs": _objects,
}

# (JSON key, attribute, kind) -- shared by every event type
_COMMON = (
    ("@context", "context", "context"),
    ("eventTime", "event_time", "time"),
    ("eventTimeZoneOffset", "event_time_zone_offset", "offset"),
    ("recordTime", "record_time", "time"),
    ("eventID", "event_id", "str"),
    ("certificationInfo", "certification_info", "json"),
    ("errorDeclaration", "error_declaration", "error"),
    ("bizStep", "biz_step", "str"),
    ("disposition", "disposition", "str"),
    ("readPoint", "read_point_", "location"),
    ("bizLocation", "biz_location_", "location"),
    ("bizTransactionList", "biz_transaction_list", "transactions"),
    ("sourceList", "source_list", "sources"),
    ("destinationList", "destination_list", "destinations"),
    ("sensorElementList", "sensor_element_list", "objs"),
)


def _export(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_export(item) for item in value]
    return copy.deepcopy(value)


@dataclass(frozen=True, kw_only=True)
class EPCISEvent:
    """What every EPCIS 2.0 event holds (when: eventTime and its zone offset; where; why)."""

    TYPE: ClassVar[str] = ""
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = _COMMON
    REQUIRED: ClassVar[tuple[str, ...]] = ("eventTime", "eventTimeZoneOffset")

    event_time: str
    event_time_zone_offset: str
    context: Any = None
    record_time: str | None = None
    event_id: str | None = None
    certification_info: Any = None
    error_declaration: Mapping[str, Any] | None = None
    biz_step: str | None = None
    disposition: str | None = None
    read_point_: Mapping[str, Any] | None = None
    biz_location_: Mapping[str, Any] | None = None
    biz_transaction_list: tuple[Mapping[str, Any], ...] | None = None
    source_list: tuple[Mapping[str, Any], ...] | None = None
    destination_list: tuple[Mapping[str, Any], ...] | None = None
    sensor_element_list: tuple[Mapping[str, Any], ...] | None = None
    extensions: Mapping[str, Any] = field(default_factory=dict)
    """Namespaced extension fields (``"example:myField"``), verbatim."""

    @property
    def type(self) -> str:
        """The EPCIS event type (``"ObjectEvent"``...)."""
        return self.TYPE

    @property
    def read_point(self) -> str | None:
        """The read point's identifier (``readPoint.id``), if any."""
        return None if self.read_point_ is None else str(self.read_point_["id"])

    @property
    def biz_location(self) -> str | None:
        """The business location's identifier (``bizLocation.id``), if any."""
        return None if self.biz_location_ is None else str(self.biz_location_["id"])

    @property
    def action(self) -> str | None:
        """ADD / OBSERVE / DELETE (None for a TransformationEvent, which has no action)."""
        return None

    @property
    def trace_codes(self) -> tuple[str, ...]:
        """The instance identifiers the event is about (EPC URIs or GS1 Digital Link URIs), in document order.

        Quantity lists name classes (lots, products), not traceable units, and are not included.
        """
        return ()

    def to_json(self) -> dict[str, Any]:
        """The event as EPCIS 2.0 JSON: equal to what it was parsed from (a fresh copy)."""
        out: dict[str, Any] = {"type": self.TYPE}
        for key, attr, _ in self.FIELDS:
            value = getattr(self, attr)
            if value is not None:
                out[key] = _export(value)
        out.update(_export(dict(self.extensions)))
        return out

    def canonical_bytes(self) -> bytes:
        """RFC 8785 bytes of :meth:`to_json`: the form to anchor this event as an evidence record."""
        return canonical_json(self.to_json())

    @classmethod
    def _check(cls, obj: dict[str, Any], path: str) -> None:
        """Type-specific rules beyond field presence (the "what" dimension)."""


def _any_list(obj: dict[str, Any], *keys: str) -> bool:
    return any(isinstance(obj.get(key), list) and obj[key] for key in keys)


@dataclass(frozen=True, kw_only=True)
class ObjectEvent(EPCISEvent):
    """Objects (by EPC or by class and quantity) observed, added or deleted."""

    TYPE: ClassVar[str] = "ObjectEvent"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        *_COMMON,
        ("action", "action_", "action"),
        ("epcList", "epc_list", "strs"),
        ("quantityList", "quantity_list", "quantities"),
        ("persistentDisposition", "persistent_disposition", "obj"),
        ("ilmd", "ilmd", "obj"),
    )
    REQUIRED: ClassVar[tuple[str, ...]] = ("eventTime", "eventTimeZoneOffset", "action")

    action_: str
    epc_list: tuple[str, ...] | None = None
    quantity_list: tuple[Mapping[str, Any], ...] | None = None
    persistent_disposition: Mapping[str, Any] | None = None
    ilmd: Mapping[str, Any] | None = None

    @property
    def action(self) -> str | None:
        return self.action_

    @property
    def trace_codes(self) -> tuple[str, ...]:
        return self.epc_list or ()

    @classmethod
    def _check(cls, obj: dict[str, Any], path: str) -> None:
        if "epcList" not in obj and not _any_list(obj, "quantityList") and not (
            _any_list(obj, "sensorElementList") and "readPoint" in obj
        ):
            raise _fail(path, "an ObjectEvent needs epcList, quantityList, or sensorElementList with readPoint")


@dataclass(frozen=True, kw_only=True)
class AggregationEvent(EPCISEvent):
    """Children packed into (ADD), seen in (OBSERVE) or unpacked from (DELETE) a parent."""

    TYPE: ClassVar[str] = "AggregationEvent"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        *_COMMON,
        ("action", "action_", "action"),
        ("parentID", "parent_id", "str"),
        ("childEPCs", "child_epcs", "strs"),
        ("childQuantityList", "child_quantity_list", "quantities"),
    )
    REQUIRED: ClassVar[tuple[str, ...]] = ("eventTime", "eventTimeZoneOffset", "action")

    action_: str
    parent_id: str | None = None
    child_epcs: tuple[str, ...] | None = None
    child_quantity_list: tuple[Mapping[str, Any], ...] | None = None

    @property
    def action(self) -> str | None:
        return self.action_

    @property
    def trace_codes(self) -> tuple[str, ...]:
        return ((self.parent_id,) if self.parent_id else ()) + (self.child_epcs or ())

    @classmethod
    def _check(cls, obj: dict[str, Any], path: str) -> None:
        if obj.get("action") != "DELETE" and not _any_list(obj, "childEPCs", "childQuantityList"):
            raise _fail(path, f"an {cls.TYPE} with action {obj.get('action')} needs childEPCs or childQuantityList")


@dataclass(frozen=True, kw_only=True)
class AssociationEvent(AggregationEvent):
    """Children (sensors, assets) associated with a parent; the parent is required."""

    TYPE: ClassVar[str] = "AssociationEvent"
    REQUIRED: ClassVar[tuple[str, ...]] = ("eventTime", "eventTimeZoneOffset", "action", "parentID")


@dataclass(frozen=True, kw_only=True)
class TransactionEvent(EPCISEvent):
    """Objects tied to (ADD), seen under (OBSERVE) or released from (DELETE) business transactions."""

    TYPE: ClassVar[str] = "TransactionEvent"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        *_COMMON,
        ("action", "action_", "action"),
        ("parentID", "parent_id", "str"),
        ("epcList", "epc_list", "strs"),
        ("quantityList", "quantity_list", "quantities"),
    )
    REQUIRED: ClassVar[tuple[str, ...]] = ("eventTime", "eventTimeZoneOffset", "action", "bizTransactionList")

    action_: str
    parent_id: str | None = None
    epc_list: tuple[str, ...] | None = None
    quantity_list: tuple[Mapping[str, Any], ...] | None = None

    @property
    def action(self) -> str | None:
        return self.action_

    @property
    def trace_codes(self) -> tuple[str, ...]:
        return ((self.parent_id,) if self.parent_id else ()) + (self.epc_list or ())

    @classmethod
    def _check(cls, obj: dict[str, Any], path: str) -> None:
        if not obj["bizTransactionList"]:
            raise _fail(f"{path}.bizTransactionList", "a TransactionEvent needs at least one business transaction")
        if obj.get("action") != "DELETE" and "epcList" not in obj and not _any_list(obj, "quantityList"):
            raise _fail(path, f"a TransactionEvent with action {obj.get('action')} needs epcList or quantityList")


@dataclass(frozen=True, kw_only=True)
class TransformationEvent(EPCISEvent):
    """Inputs consumed and outputs produced (no action)."""

    TYPE: ClassVar[str] = "TransformationEvent"
    FIELDS: ClassVar[tuple[tuple[str, str, str], ...]] = (
        *_COMMON,
        ("inputEPCList", "input_epc_list", "strs"),
        ("inputQuantityList", "input_quantity_list", "quantities"),
        ("outputEPCList", "output_epc_list", "strs"),
        ("outputQuantityList", "output_quantity_list", "quantities"),
        ("transformationID", "transformation_id", "str"),
        ("persistentDisposition", "persistent_disposition", "obj"),
        ("ilmd", "ilmd", "obj"),
    )

    input_epc_list: tuple[str, ...] | None = None
    input_quantity_list: tuple[Mapping[str, Any], ...] | None = None
    output_epc_list: tuple[str, ...] | None = None
    output_quantity_list: tuple[Mapping[str, Any], ...] | None = None
    transformation_id: str | None = None
    persistent_disposition: Mapping[str, Any] | None = None
    ilmd: Mapping[str, Any] | None = None

    @property
    def trace_codes(self) -> tuple[str, ...]:
        return (self.input_epc_list or ()) + (self.output_epc_list or ())

    @classmethod
    def _check(cls, obj: dict[str, Any], path: str) -> None:
        inputs = _any_list(obj, "inputEPCList", "inputQuantityList")
        outputs = _any_list(obj, "outputEPCList", "outputQuantityList")
        if not (inputs and outputs or (inputs or outputs) and "transformationID" in obj):
            raise _fail(path, "a TransformationEvent needs inputs and outputs (or one of them with transformationID)")


EVENT_TYPES: Mapping[str, type[EPCISEvent]] = {
    cls.TYPE: cls
    for cls in (ObjectEvent, AggregationEvent, TransactionEvent, TransformationEvent, AssociationEvent)
}
"""The event classes by EPCIS ``type``."""


def _extensions(obj: dict[str, Any], known: set[str], path: str) -> dict[str, Any]:
    extra = {}
    for key, value in obj.items():
        if key in known:
            continue
        if not _is_extension(key):
            raise _fail(path, f"unknown field {key[:64]!r} (extension fields need a namespace prefix, like 'ex:name')")
        extra[key] = value
    return extra


def event_from_json(obj: Any, path: str = "$") -> EPCISEvent:
    """One already-parsed EPCIS event (a dict) as its typed dataclass; the input is copied, not kept."""
    if not isinstance(obj, dict):
        raise _fail(path, "an event must be an object")
    kind = obj.get("type")
    if "type" not in obj:
        raise _fail(path, "missing field 'type'")
    cls = EVENT_TYPES.get(kind) if isinstance(kind, str) else None
    if cls is None:
        shown = kind[:40] if isinstance(kind, str) else type(kind).__name__
        raise _fail(f"{path}.type", f"unsupported event type {shown!r} (expected one of {', '.join(EVENT_TYPES)})")
    obj = copy.deepcopy(obj)
    for key in cls.REQUIRED:
        if key not in obj:
            raise _fail(path, f"missing field {key!r}")
    values: dict[str, Any] = {}
    for key, attr, kind_name in cls.FIELDS:
        if key in obj:
            values[attr] = _KINDS[kind_name](obj[key], f"{path}.{key}")
    cls._check(obj, path)
    known = {key for key, _, _ in cls.FIELDS} | {"type"}
    values["extensions"] = _extensions(obj, known, path)
    return cls(**values)
