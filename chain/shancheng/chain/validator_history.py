"""Validator-set history and header sealing.

Every block h >= 1 carries in its header's extra data the commitment to the validator sets that certify it
and block h + 2 (:func:`shancheng.sdk.chainproof.header_commitment`); a change made by block h (Governance's
ValidatorAdded / ValidatorRemoved events, :func:`validator_updates`) takes effect at h + 2
(:data:`VALIDATOR_CHANGE_DELAY`). :class:`ValidatorHistory` keeps the set of every height (changes only, in the
ledger's database); :class:`Sealer` computes one block's extra data from its receipts.

>>> history = ValidatorHistory(db, genesis_set, governance=governance_address)   # doctest: +SKIP
>>> history.validator_set(1) == genesis_set                                       # doctest: +SKIP
True
"""

from __future__ import annotations

import bisect
import functools
import json
import logging
import struct
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from eth.abc import ReceiptAPI
from eth_abi.abi import decode
from eth_abi.exceptions import DecodingError
from eth_utils.crypto import keccak

from shancheng.contracts.artifacts import load
from shancheng.contracts.deploy import GOVERNANCE
from shancheng.sdk.chainproof.validators import Validator, ValidatorSet, ValidatorUpdate, header_commitment
from shancheng.sdk.errors import InvalidInput, ShanchengError

from .storage import LevelDB, StorageError

__all__ = ["VALIDATOR_CHANGE_DELAY", "Sealer", "ValidatorHistory", "validator_updates"]

#: the validator updates of block h apply from block h + 2 (CometBFT's rule; Governance.VALIDATOR_CHANGE_DELAY)
VALIDATOR_CHANGE_DELAY = 2
_VSET = b"sc:vset:"  # + u64 first height it certifies -> validator set JSON (changes only; genesis is implied)

logger = logging.getLogger("shancheng.ledger")

#: (first heights, the set from each of them on): one value, replaced whole, so readers never see half of it
History = tuple[tuple[int, ...], tuple[ValidatorSet, ...]]


@dataclass(frozen=True)
class _Event:
    topic: int
    types: list[str]


@functools.cache
def _validator_events() -> tuple[_Event, _Event]:
    """Governance's ValidatorAdded and ValidatorRemoved events (topic 0 and data types), from its ABI."""
    found: dict[str, _Event] = {}
    for item in load(GOVERNANCE).abi:
        if item.get("type") == "event" and item.get("name") in ("ValidatorAdded", "ValidatorRemoved"):
            types = [str(i["type"]) for i in item["inputs"]]
            signature = f"{item['name']}({','.join(types)})"
            data_types = [str(i["type"]) for i in item["inputs"] if not i.get("indexed")]
            found[item["name"]] = _Event(int.from_bytes(keccak(signature.encode()), "big"), data_types)
    if set(found) != {"ValidatorAdded", "ValidatorRemoved"}:
        raise ShanchengError("the Governance artifact has no ValidatorAdded/ValidatorRemoved events; run "
                             "'shancheng contracts build'")
    return found["ValidatorAdded"], found["ValidatorRemoved"]


def validator_updates(receipts: Sequence[ReceiptAPI], governance: bytes) -> list[ValidatorUpdate]:
    """Governance's (at ``governance``) ValidatorAdded / ValidatorRemoved logs in ``receipts``, in log order."""
    added, removed = _validator_events()
    updates: list[ValidatorUpdate] = []
    for receipt in receipts:
        for log in receipt.logs:
            if bytes(log.address) != governance or not log.topics:
                continue
            topic = int(log.topics[0])
            try:
                if topic == added.topic:
                    key, consensus_key, power, _ = decode(added.types, bytes(log.data))
                    updates.append(ValidatorUpdate(bytes(key), bytes(consensus_key), int(power)))
                elif topic == removed.topic:
                    key, consensus_key, _ = decode(removed.types, bytes(log.data))
                    updates.append(ValidatorUpdate(bytes(key), bytes(consensus_key), 0))
            except (DecodingError, ValueError, ShanchengError) as exc:
                logger.warning("ignored a malformed validator event of Governance: %s", exc)
    return updates


def _sm2_key_bytes(validator: Validator) -> bytes:
    return bytes(validator.sm2_key.to_bytes())[-64:]  # x || y


def _net_updates(before: ValidatorSet, after: ValidatorSet) -> tuple[ValidatorUpdate, ...]:
    """The updates that turn ``before`` into ``after``: new and re-weighted validators in ``after``'s order,
    then removals (power 0) in ``before``'s order; one per validator."""
    old = {_sm2_key_bytes(v): v for v in before.validators}
    new = {_sm2_key_bytes(v): v for v in after.validators}
    out = [ValidatorUpdate(key, bytes(v.consensus_key), int(v.power)) for key, v in new.items()
           if key not in old or old[key].power != v.power]
    out += [ValidatorUpdate(key, bytes(v.consensus_key), 0) for key, v in old.items() if key not in new]
    return tuple(out)


class Sealer:
    """The extra data of block ``height``: header_commitment(set(height), set(height + 2)), where set(height + 2)
    is set(height + 1) after the block's validator updates (when the history follows them)."""

    def __init__(self, current: ValidatorSet, next_: ValidatorSet, *, governance: bytes, follow_updates: bool) -> None:
        self._current = current
        self._next = next_
        self._governance = governance
        self._follow_updates = follow_updates
        self.updates: tuple[ValidatorUpdate, ...] = ()
        self.after_next: ValidatorSet | None = None

    def seal(self, receipts: Sequence[ReceiptAPI]) -> bytes:
        """The extra data for a block with ``receipts``; sets :attr:`updates` and :attr:`after_next`."""
        after = self._next
        if self._follow_updates:
            for update in validator_updates(receipts, self._governance):
                try:
                    after = after.apply([update])
                except ShanchengError as exc:  # Governance checks the same rules; never expected
                    logger.warning("ignored a validator update the set refuses: %s", exc)
        changed = after.hash() != self._next.hash()
        self.updates = _net_updates(self._next, after) if changed else ()
        self.after_next = after if changed else None
        return header_commitment(self._current, after)


class ValidatorHistory:
    """The validator set of every height, from the genesis set and the changes stored in ``db``.

    ``follow_updates=False`` (the solo producer, a one-validator development chain): Governance still executes
    validator votes, but the set that certifies blocks stays the genesis set."""

    def __init__(self, db: LevelDB, genesis_validators: ValidatorSet, *, governance: bytes,
                 follow_updates: bool = True) -> None:
        self._db = db
        self._governance = governance
        self.follow_updates = follow_updates
        self.genesis_validators = genesis_validators
        history = [(1, genesis_validators)]
        for key, raw in db.iterate(_VSET):
            try:
                history.append((struct.unpack(">Q", key[len(_VSET):])[0], ValidatorSet.from_json(json.loads(raw))))
            except (ValueError, struct.error) as exc:
                raise StorageError(f"the database at {db.path} holds a damaged validator set ({exc})") from exc
        self._history: History = (tuple(h for h, _ in history), tuple(v for _, v in history))

    def validator_set(self, height: int) -> ValidatorSet:
        """The set that certifies block ``height`` (>= 1). Changes made by block h take effect at h + 2, so
        the answer is known up to head + 2; above that it is the latest known set."""
        if height < 1:
            raise InvalidInput(f"block {height} is not certified by a validator set (heights start at 1)")
        heights, sets = self._history
        return sets[bisect.bisect_right(heights, height) - 1]

    def validator_changes(self, up_to: int) -> list[tuple[int, ValidatorSet]]:
        """(h, the set from h + 2 on) for every block h <= ``up_to`` whose validator updates changed the set,
        in ascending order."""
        heights, sets = self._history
        return [(effective - VALIDATOR_CHANGE_DELAY, vset) for effective, vset in zip(heights[1:], sets[1:], strict=True)
                if effective - VALIDATOR_CHANGE_DELAY <= up_to]

    def sealer(self, height: int) -> Sealer:
        """The :class:`Sealer` of block ``height`` on the history as committed now."""
        return Sealer(self.validator_set(height), self.validator_set(height + 1), governance=self._governance,
                      follow_updates=self.follow_updates)

    def stage(self, batch: MutableMapping[bytes, bytes], height: int, after_next: ValidatorSet | None) -> History:
        """Write into ``batch`` the change block ``height`` made (``after_next``: the set from height + 2 on, or
        None when unchanged); returns the history to :meth:`adopt` once the batch is committed."""
        heights, sets = self._history
        if after_next is None:
            return heights, sets
        effective = height + VALIDATOR_CHANGE_DELAY
        batch[_VSET + struct.pack(">Q", effective)] = json.dumps(after_next.to_json()).encode()
        return (*heights, effective), (*sets, after_next)

    def adopt(self, history: History) -> None:
        """Make ``history`` (from :meth:`stage`) the one readers see."""
        self._history = history
