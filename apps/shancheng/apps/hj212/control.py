"""Reverse control: commands an operator sends to a connected station through the gateway (HJ 212-2017 command
table, :mod:`shancheng.sdk.envmon.hj212.commands`) and the station's answers to them.

The listener writes a command on the station's newest authenticated connection, with the PW the station
authenticated with (the registry keeps only an HMAC of it). The station answers with the command's QN: a request
answer (9011, QnRtn), for a command that asks for data an upload with the command's CN, and an execution result
(9012, ExeRtn). The log keeps the last commands and their answers in memory (the gateway's audit log records who
sent what: ``POST /api/v1/stations/{mn}/commands``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Annotated, Any

from pydantic import ConfigDict, Field, with_config

from shancheng.sdk.envmon.hj212 import COMMANDS, Packet, QnRtn
from shancheng.sdk.errors import ShanchengError

__all__ = ["CommandLog", "SentCommand", "StationNotConnected", "operator_commands"]

#: the commands an operator may send (the platform's side of the table, answers excluded)
operator_commands = frozenset(cn for cn, row in COMMANDS.items() if row.sender == "platform" and cn[0] != "9")


class StationNotConnected(ShanchengError):
    """A command for a station that has no authenticated connection to the listener."""


@with_config(ConfigDict(json_schema_serialization_defaults_required=True))
@dataclass
class SentCommand:
    """A command sent to a station and what it answered so far."""

    mn: str
    qn: str
    cn: str
    fields: dict[str, str]
    sent_at: float
    #: what the station answered, in order: {"cn", "at", and "QnRtn", "ExeRtn" or the uploaded fields}
    answers: list[dict[str, Any]] = field(default_factory=list)
    #: how the station ended the command (``"QnRtn 2"`` for a refused request, ``"ExeRtn 1"``, ...), and the
    #: listener's count of queued packets at that answer (its uploads before it are stored once that many are)
    settled: Annotated[str | None, Field(exclude=True)] = None
    settled_seq: Annotated[int, Field(exclude=True)] = 0

    def snapshot(self) -> SentCommand:
        """A copy that later answers do not change (take it on the listener's loop)."""
        return replace(self, fields=dict(self.fields), answers=[dict(a) for a in self.answers])


class CommandLog:
    """The last ``limit`` commands sent, by (MN, QN); used on the listener's loop only."""

    def __init__(self, limit: int = 1000) -> None:
        self.limit = limit
        self._sent: OrderedDict[tuple[str, str], SentCommand] = OrderedDict()

    def add(self, sent: SentCommand) -> None:
        self._sent[(sent.mn, sent.qn)] = sent
        while len(self._sent) > self.limit:
            self._sent.popitem(last=False)

    def get(self, mn: str, qn: str) -> SentCommand | None:
        return self._sent.get((mn, qn))

    def answer(self, packet: Packet, at: float, seq: int = 0) -> bool:
        """Record ``packet`` if it answers a command sent to its station (same MN and QN); True when it did.
        ``seq``: how many packets the listener has queued for storing so far."""
        sent = self._sent.get((packet.mn, packet.qn))
        if sent is None or packet.cn not in ("9011", "9012", sent.cn):
            return False
        sent.answers.append({"cn": packet.cn, "at": at, **dict(list(packet.cp.items())[:64])})
        ended = None
        if packet.cn == "9011" and packet.cp.get("QnRtn") != str(QnRtn.READY):
            ended = f"QnRtn {(packet.cp.get('QnRtn') or '?')[:8]}"
        elif packet.cn == "9012":
            ended = f"ExeRtn {(packet.cp.get('ExeRtn') or '?')[:8]}"
        if ended is not None and sent.settled is None:
            sent.settled, sent.settled_seq = ended, seq
        return True
