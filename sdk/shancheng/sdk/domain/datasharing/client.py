"""The data-sharing client: one department's lifecycle steps on the DataSharingLog contract (:class:`DataSharing`),
their provenance, and the off-chain check of a recorded activity signature.

    sharing = DataSharing(department_client)
    ds = sharing.collect(commitment=doc_commitment(readings, salt), staff=operator_key)
"""

from __future__ import annotations

from collections.abc import Iterable

from ...client import Client, Contract, Receipt
from ...crypto import SM2PublicKey, sm3
from ...errors import InvalidInput, InvalidSignature
from ..events import ChainEvent, fetch_events, receipt_events
from ..prov import DATA_SHARING_EVENTS, SHARING_STEPS, Provenance, Step
from ..staff import StaffSigner, sign_staff_message, staff_address, verify_preimage_signature
from ..transactions import DomainError, send_checked
from .messages import ZERO32, _id32, _new_id, activity_preimage
from .models import (
    ActivityInfo,
    ActivityRecord,
    ActivityResult,
    Authorisation,
    Dataset,
    DatasetVersion,
    Destruction,
    _or_none,
    _steps_mask,
)

__all__ = [
    "DataSharing",
]


class DataSharing:
    """The ``DataSharingLog`` contract for one organisation's client (see the module docstring).

    Activities need an account of a department (organisation role DEPARTMENT) and a staff member of it with the
    OPERATOR role (:func:`~shancheng.sdk.domain.register_staff`); reads and provenance work for any member.
    """

    def __init__(self, client: Client) -> None:
        if not isinstance(client, Client):
            raise InvalidInput("DataSharing needs a shancheng.sdk.Client")
        self.client = client
        self.contract: Contract = client.contract("DataSharingLog")

    # -- authorisations --------------------------------------------------------------------------
    def grant_authorisation(self, dataset_id: bytes, *, recipient_org: int, steps: Iterable[Step | int],
                            expires_at: int, purpose_code: int, purpose_commitment: bytes,
                            authorisation_id: bytes | None = None) -> Authorisation:
        """Grant ``recipient_org`` (:data:`PUBLIC` for an open-only authorisation) the ``steps`` on
        ``dataset_id`` until ``expires_at`` (unix seconds) for purpose ``purpose_code``; ``purpose_commitment``
        is the commitment of the off-chain purpose / agreement text (``doc_commitment``). Caller: the owner."""
        auth = _new_id(authorisation_id, "an authorisation id", self.client.org_id)
        if len(purpose_commitment) != 32:
            raise InvalidInput("the purpose commitment must be 32 bytes")
        if not 0 <= purpose_code < 1 << 32:
            raise InvalidInput("the purpose code must fit in 32 bits")
        grant = (auth, _id32(dataset_id, "a dataset id"), recipient_org, purpose_code, purpose_commitment,
                 _steps_mask(steps), expires_at)
        send_checked(self.client, self.contract.call("grantAuthorisation", grant))
        granted = self.authorisation(auth)
        assert granted is not None  # the transaction succeeded
        return granted

    def revoke_authorisation(self, authorisation_id: bytes) -> Receipt:
        return send_checked(self.client, self.contract.call("revokeAuthorisation", authorisation_id))

    # -- activities ------------------------------------------------------------------------------
    def sign_activity(self, record: ActivityRecord, staff: StaffSigner) -> tuple[bytes, bytes]:
        """The staff member's (r, s) over M = SM3(activity_preimage(record))."""
        if staff_address(staff) != record.staff:
            raise InvalidInput(f"the record names staff {record.staff}, but the signer is {staff_address(staff)}")
        preimage = activity_preimage(self.client.chain_id, self.contract.address, record.to_abi())
        _, r, s = sign_staff_message(staff, sm3(preimage))
        return r, s

    def log_record(self, record: ActivityRecord, *, staff: StaffSigner) -> ActivityResult:
        """Sign ``record`` as ``staff`` and log it."""
        r, s = self.sign_activity(record, staff)
        receipt = send_checked(self.client, self.contract.call("logActivity", record.to_abi(), r, s))
        events = receipt_events(self.contract, receipt, ("ActivityLogged", "WasGeneratedBy"))
        verified = next(bool(e.args["signatureVerified"]) for e in events if e.name == "ActivityLogged")
        generated = next(((bytes(e.args["datasetId"]), int(e.args["version"])) for e in events
                          if e.name == "WasGeneratedBy"), None)
        return ActivityResult(record, r, s, verified, receipt, generated)

    def log_activity(self, step: Step | int, *, staff: StaffSigner, dataset_id: bytes | None = None,
                     version: int | None = None, plan: bytes | None = None, recipient_org: int = 0,
                     informed_by: bytes | None = None, detail: bytes | None = None,
                     generated_dataset: bytes | None = None, generated_commitment: bytes | None = None,
                     activity_id: bytes | None = None, started_at: int | None = None,
                     ended_at: int | None = None) -> ActivityResult:
        """Log one lifecycle step signed by ``staff``. ``version`` defaults to the dataset's latest; the times to
        the newest block's time (an activity may not end after the block that logs it); ``detail`` is the
        commitment of the off-chain activity record (zero when none)."""
        step = Step(step)
        if step is Step.COLLECT:
            if dataset_id is not None or version:
                raise InvalidInput("a collection uses no dataset: it generates one")
            ds, v = ZERO32, 0
        else:
            if dataset_id is None:
                raise InvalidInput(f"{step.label} needs the dataset it acts on")
            ds = dataset_id
            if version is None:
                current = self.dataset(ds)
                if current is None:
                    raise DomainError(f"dataset 0x{ds.hex()} is unknown")
                version = current.latest_version
            v = version
        now = self._block_time()
        record = ActivityRecord(
            activity_id=_new_id(activity_id, "an activity id", self.client.org_id), step=step, dataset_id=ds, version=v,
            started_at=now if started_at is None else started_at, ended_at=now if ended_at is None else ended_at,
            plan=plan or ZERO32, recipient_org=recipient_org, informed_by=informed_by or ZERO32,
            detail=detail or ZERO32, staff=staff_address(staff), generated_dataset=generated_dataset or ZERO32,
            generated_commitment=generated_commitment or ZERO32)
        return self.log_record(record, staff=staff)

    def collect(self, *, commitment: bytes, staff: StaffSigner, dataset_id: bytes | None = None,
                detail: bytes | None = None) -> ActivityResult:
        """Collect a new dataset (version 1, owned by this department) with content ``commitment``."""
        return self.log_activity(Step.COLLECT, staff=staff,
                                 generated_dataset=_new_id(dataset_id, "a dataset id", self.client.org_id),
                                 generated_commitment=commitment, detail=detail)

    def share(self, dataset_id: bytes, *, recipient_org: int, plan: bytes, staff: StaffSigner,
              step: Step = Step.SHARE, version: int | None = None, detail: bytes | None = None) -> ActivityResult:
        """Hand a copy to ``recipient_org`` (SHARE, EXCHANGE, or OPEN with :data:`PUBLIC`) under the authorisation
        ``plan``. Caller: the owner."""
        if step not in SHARING_STEPS:
            raise InvalidInput(f"{step.label} is not a sharing step (exchange, share, open)")
        return self.log_activity(step, staff=staff, dataset_id=dataset_id, version=version, plan=plan,
                                 recipient_org=recipient_org, detail=detail)

    def derive(self, dataset_id: bytes, *, commitment: bytes, staff: StaffSigner, step: Step = Step.PROCESS,
               plan: bytes | None = None, new_dataset_id: bytes | None = None, version: int | None = None,
               informed_by: bytes | None = None, detail: bytes | None = None) -> ActivityResult:
        """PROCESS or ANALYZE ``dataset_id`` into a new data product (a new dataset owned by this department,
        derived from the used version); a recipient passes the authorisation ``plan``. To version the same
        dataset instead (owner only), pass ``new_dataset_id=dataset_id``."""
        if step not in (Step.PROCESS, Step.ANALYZE):
            raise InvalidInput(f"{step.label} derives nothing (process, analyze do)")
        generated = (dataset_id if new_dataset_id == dataset_id
                     else _new_id(new_dataset_id, "a dataset id", self.client.org_id))
        return self.log_activity(step, staff=staff, dataset_id=dataset_id, version=version, plan=plan,
                                 informed_by=informed_by, detail=detail, generated_dataset=generated,
                                 generated_commitment=commitment)

    def settle(self, dataset_id: bytes, *, share_activity: bytes, staff: StaffSigner,
               detail: bytes | None = None) -> ActivityResult:
        """Settle a share (owner or its recipient)."""
        return self.log_activity(Step.SETTLE, staff=staff, dataset_id=dataset_id, informed_by=share_activity,
                                 detail=detail)

    def destroy(self, dataset_id: bytes, *, staff: StaffSigner, detail: bytes | None = None) -> ActivityResult:
        """Destroy the dataset (every version): later use is refused. Caller: the owner."""
        return self.log_activity(Step.DESTROY, staff=staff, dataset_id=dataset_id, detail=detail)

    def _block_time(self) -> int:
        block = self.client.rpc.call("eth_getBlockByNumber", ["latest", False])
        if not isinstance(block, dict) or not isinstance(block.get("timestamp"), str):
            raise InvalidInput("eth_getBlockByNumber: no block timestamp")
        return int(block["timestamp"], 16)

    # -- reads -----------------------------------------------------------------------------------
    def dataset(self, dataset_id: bytes) -> Dataset | None:
        (t,) = self.client.view(self.contract, "dataset", dataset_id)
        if not t[0]:
            return None
        return Dataset(dataset_id=dataset_id, owner_org=t[0], latest_version=t[1], created_at=t[2],
                       destroyed_at=t[3] or None, destroyed_by=bytes(t[4]) if t[3] else None,
                       derived_from=_or_none(t[5]), source_plan=_or_none(t[6]), control_plan=_or_none(t[7]))

    def frozen(self, dataset_id: bytes) -> bool:
        """True when an authorisation governing the (derived) dataset was revoked or expired, or the dataset it
        authorised destroyed: every step but destroy is refused."""
        (frozen,) = self.client.view(self.contract, "frozen", dataset_id)
        return bool(frozen)

    def dataset_version(self, dataset_id: bytes, version: int) -> DatasetVersion | None:
        (t,) = self.client.view(self.contract, "datasetVersion", dataset_id, version)
        if not t[4]:
            return None
        derived = bytes(t[2]) != ZERO32
        return DatasetVersion(dataset_id=dataset_id, version=version, commitment=bytes(t[0]),
                              generated_by=bytes(t[1]), derived_from_dataset=bytes(t[2]) if derived else None,
                              derived_from_version=t[3] if derived else None, generated_at=t[4])

    def authorisation(self, authorisation_id: bytes) -> Authorisation | None:
        (t,) = self.client.view(self.contract, "authorisation", authorisation_id)
        if not t[4]:
            return None
        (valid,) = self.client.view(self.contract, "authorisationValid", authorisation_id)
        return Authorisation(authorisation_id=authorisation_id, dataset_id=bytes(t[0]), recipient_org=t[1],
                             purpose_code=t[2], allowed_steps=frozenset(s for s in Step if t[3] & (1 << s)),
                             granted_at=t[4], expires_at=t[5], revoked_at=t[6] or None,
                             purpose_commitment=bytes(t[7]), valid=bool(valid))

    def authorisations_of(self, dataset_id: bytes) -> list[bytes]:
        """Every authorisation granted on the dataset, in grant order (revoked and expired included)."""
        (ids,) = self.client.view(self.contract, "authorisationsOf", dataset_id)
        return [bytes(i) for i in ids]

    def recipients_of(self, dataset_id: bytes) -> list[int]:
        """Organisations that received the dataset (SHARE, EXCHANGE, OPEN; 0 = the public), first receipt order."""
        (orgs,) = self.client.view(self.contract, "recipientsOf", dataset_id)
        return [int(o) for o in orgs]

    def destruction(self, dataset_id: bytes) -> Destruction | None:
        destroyed, at, activity = self.client.view(self.contract, "destruction", dataset_id)
        return Destruction(dataset_id=dataset_id, destroyed_at=at, activity_id=bytes(activity)) if destroyed else None

    def activity(self, activity_id: bytes) -> ActivityInfo | None:
        (t,) = self.client.view(self.contract, "activity", activity_id)
        if not t[3]:
            return None
        return ActivityInfo(activity_id=activity_id, step=Step(t[0]), org=t[1], recipient_org=t[2], logged_at=t[3],
                            dataset_id=bytes(t[4]))

    # -- provenance ------------------------------------------------------------------------------
    def events(self, *, from_block: int = 0, to_block: int | None = None) -> list[ChainEvent]:
        """Every PROV-shaped event of the contract in the block range, in chain order."""
        return fetch_events(self.client, self.contract, DATA_SHARING_EVENTS, from_block=from_block, to_block=to_block)

    def provenance(self, dataset_id: bytes, *, from_block: int = 0) -> Provenance:
        """The provenance of ``dataset_id`` folded from the contract's events (``eth_getLogs``)."""
        return Provenance.from_events(dataset_id, self.events(from_block=from_block))

    def verify_activity(self, record: ActivityRecord, r: bytes, s: bytes, *, block: int | str = "latest") -> None:
        """The off-chain check of a logged activity's staff signature against the staff key Governance held at
        ``block`` (for chains without the GM precompile). Raises :class:`InvalidSignature`."""
        _org, _roles, _active, key = self.client.view(self.client.governance, "staffInfo", record.staff, block=block)
        if not key:
            raise InvalidSignature(f"staff {record.staff} has no registered key")
        if SM2PublicKey.from_bytes(b"\x04" + bytes(key)).sm3_address() != bytes.fromhex(record.staff[2:]):
            raise InvalidSignature(f"the registered key of {record.staff} does not match its address")
        verify_preimage_signature(bytes(key), activity_preimage(self.client.chain_id, self.contract.address,
                                                                record.to_abi()), r, s)
