"""Data-sharing lifecycle provenance on chain (``DataSharingLog``): datasets, authorisations, signed activities.

A department logs every lifecycle step of its datasets — collect, transmit, store, process, manage, exchange,
share, open, analyze, settle, destroy (:class:`~shancheng.sdk.domain.prov.Step`) — each signed by the acting
staff member (an operator of the department); a share, exchange or open needs an authorisation (the PROV plan)
granted by the dataset owner to the recipient. :meth:`DataSharing.provenance` folds the contract's PROV-shaped
events into a :class:`~shancheng.sdk.domain.prov.Provenance` (where from, who received, PROV-JSON).

>>> sharing = DataSharing(department_client)                                               # doctest: +SKIP
>>> ds = sharing.collect(commitment=doc_commitment(readings, salt), staff=operator_key)     # doctest: +SKIP
>>> auth = sharing.grant_authorisation(ds.generated[0], recipient_org=7, steps={Step.SHARE},  # doctest: +SKIP
...                                    expires_at=now + 86400, purpose_code=1, purpose_commitment=purpose)
>>> sharing.share(ds.generated[0], recipient_org=7, plan=auth.authorisation_id, staff=operator_key)  # doctest: +SKIP
>>> sharing.provenance(ds.generated[0]).to_prov_json()                                     # doctest: +SKIP

The package: :mod:`.messages` (what staff sign, namespaced ids), :mod:`.models` (what the contract holds and says)
and :mod:`.client` (:class:`DataSharing`).

The staff member signs M = SM3(abi.encode(ACTIVITY_TAG, chain id, contract, record)) with
``ACTIVITY_TAG = keccak256("shancheng.datasharing.Activity.v1")`` (the contract's ``activityPreimage``); the
contract checks it where the GM precompile exists and records it for an off-chain check elsewhere
(:meth:`DataSharing.verify_activity`). Identifiers (dataset, activity, authorisation) are 32 bytes in the creating
organisation's namespace: the first 8 bytes are its org id (big-endian), the contract refuses any other, so no
member can claim an id another organisation is about to use (:func:`namespaced_id`; left out, the other 24 bytes
are drawn from a CSPRNG).

Derived data stays under its source owner's control: a dataset a recipient derives from another organisation's
dataset records the authorisation it was derived under, and every later step on it (and on what is derived from
it) needs that authorisation live and, for process, exchange, share, open and analyze, covering the step;
revoking it or destroying the source freezes the derivative (:meth:`DataSharing.frozen`; only destroy is left).
"""

from __future__ import annotations

from ..prov import Step
from .client import DataSharing
from .messages import ACTIVITY_RECORD_TYPE, ACTIVITY_TAG, activity_preimage, namespaced_id
from .models import (
    AUTHORISABLE_STEPS,
    PUBLIC,
    ActivityInfo,
    ActivityRecord,
    ActivityResult,
    Authorisation,
    Dataset,
    DatasetVersion,
    Destruction,
)

__all__ = [
    "ACTIVITY_RECORD_TYPE",
    "ACTIVITY_TAG",
    "AUTHORISABLE_STEPS",
    "PUBLIC",
    "ActivityInfo",
    "ActivityRecord",
    "ActivityResult",
    "Authorisation",
    "DataSharing",
    "Dataset",
    "DatasetVersion",
    "Destruction",
    "Step",
    "activity_preimage",
    "namespaced_id",
]
