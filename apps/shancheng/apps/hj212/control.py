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
from dataclasses import dataclass, field
from typing import Any

from shancheng.sdk.envmon.hj212 import COMMANDS, Packet

__all__ = ["CommandLog", "SentCommand", "operator_commands"]

#: the commands an operator may send (the platform's side of the table, answers excluded)
operator_commands = frozenset(cn for cn, row in COMMANDS.items() if row.sender == "platform" and cn[0] != "9")


@dataclass
class SentCommand:
    mn: str
    qn: str
    cn: str
    fields: dict[str, str]
    sent_at: float
    #: what the station answered, in order: {"cn", "at", and "QnRtn", "ExeRtn" or the uploaded fields}
    answers: list[dict[str, Any]] = field(default_factory=list)


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

    def answer(self, packet: Packet, at: float) -> bool:
        """Record ``packet`` if it answers a command sent to its station (same MN and QN); True when it did."""
        sent = self._sent.get((packet.mn, packet.qn))
        if sent is None or packet.cn not in ("9011", "9012", sent.cn):
            return False
        sent.answers.append({"cn": packet.cn, "at": at, **dict(list(packet.cp.items())[:64])})
        return True
