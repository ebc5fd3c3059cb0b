// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IGovernance} from "./interfaces/IGovernance.sol";
import {Roles} from "./lib/Roles.sol";
import {GmCrypto} from "./lib/GmCrypto.sol";

/// @title DataSharingLog — data-sharing lifecycle provenance (domain/data-sharing.md), as W3C PROV-DM.
/// @notice Entities are dataset versions (datasetId, version) carrying a content commitment; activities are
///   lifecycle steps logged by a department's operator (a staff Person acting on behalf of the department
///   Organization); plans are sharing authorisations granted by the dataset owner. Every activity carries
///   the acting staff member's SM2 signature (default user ID) over
///     M = SM3(abi.encode(ACTIVITY_TAG, block.chainid, address(this), record))
///   checked on chain where the GM precompile exists, recorded in ActivityLogged for off-chain checks
///   elsewhere. PROV relations are emitted as one event each (Used, WasGeneratedBy, WasDerivedFrom,
///   WasAttributedTo, WasAssociatedWith, ActedOnBehalfOf, WasInformedBy, WasInvalidatedBy), so a PROV-JSON
///   document is a fold over this contract's logs.
///
///   Steps (the district plan's eight plus GB/T 37988-2019 transmit/process/exchange):
///     1 COLLECT        generates a new dataset, version 1, owned by the caller's department
///     2 TRANSMIT       owner only
///     3 STORE          owner only
///     4 PROCESS        owner, or a recipient under an authorisation covering PROCESS; may generate
///                      a new version (owner only) or a derived dataset owned by the caller
///     5 MANAGE         owner only
///     6 EXCHANGE       owner only, to an active recipient org, under an authorisation covering EXCHANGE
///     7 SHARE          owner only, to an active recipient org, under an authorisation covering SHARE
///     8 OPEN           owner only, to an active recipient org or the public (0), under an authorisation
///     9 ANALYZE        as PROCESS
///    10 SETTLE         owner or recipient of the share it is informed by (informedBy)
///    11 DESTROY        owner only; invalidates the dataset (every version): later use is refused
///
///   Derived data stays under its source owner's control. A dataset derived by a recipient from another
///   organisation's dataset records its source and the authorisation (plan) it was derived under; a dataset
///   derived from a controlled one inherits that control. Every step on a controlled dataset (and every grant on
///   it) needs each authorisation up the chain to be live — unrevoked, unexpired, its dataset not destroyed —
///   and, for a step an authorisation may cover (process, exchange, share, open, analyze), to cover that step
///   (a grant: every step it grants). So revoking the plan or destroying the source freezes every derivative:
///   only DESTROY is left to its owner. A derived commitment equal to its source version's is refused. At most
///   MAX_CONTROL_DEPTH authorisations govern a dataset (the checks walk that chain).
///
///   Identifiers (dataset, activity, authorisation) are in the creating organisation's namespace: their first
///   8 bytes are its org id (big-endian), so no member can claim an id another organisation is about to use.
contract DataSharingLog {
    bytes32 public constant ACTIVITY_TAG = keccak256("shancheng.datasharing.Activity.v1");

    uint8 public constant COLLECT = 1;
    uint8 public constant TRANSMIT = 2;
    uint8 public constant STORE = 3;
    uint8 public constant PROCESS = 4;
    uint8 public constant MANAGE = 5;
    uint8 public constant EXCHANGE = 6;
    uint8 public constant SHARE = 7;
    uint8 public constant OPEN = 8;
    uint8 public constant ANALYZE = 9;
    uint8 public constant SETTLE = 10;
    uint8 public constant DESTROY = 11;
    /// @notice steps an authorisation may cover, as a mask of (1 << step)
    uint16 public constant AUTHORISABLE_STEPS =
        uint16((1 << PROCESS) | (1 << EXCHANGE) | (1 << SHARE) | (1 << OPEN) | (1 << ANALYZE));
    /// @notice the recipient "org" of an authorisation that opens a dataset to the public
    uint64 public constant PUBLIC = 0;
    /// @notice the most authorisations of other organisations that may govern one dataset
    uint8 public constant MAX_CONTROL_DEPTH = 8;

    struct Dataset {
        uint64 ownerOrg;
        uint32 latestVersion;
        uint64 createdAt;
        uint64 destroyedAt; // 0 while not destroyed
        bytes32 destroyedBy; // the DESTROY activity
        bytes32 derivedFrom; // the dataset it was derived from (0 for a collected dataset)
        bytes32 sourcePlan; // the source owner's authorisation it was derived under (0: derived by the source's owner)
        bytes32 controlPlan; // the nearest authorisation of another org that governs it (0: nobody else's control)
        uint8 controlDepth; // how many authorisations govern it (the length of the controlPlan chain)
    }

    struct DatasetVersion {
        bytes32 commitment;
        bytes32 generatedBy; // activity
        bytes32 derivedFromDataset; // 0 for a collected dataset
        uint32 derivedFromVersion;
        uint64 generatedAt;
    }

    struct AuthorisationGrant {
        bytes32 authorisationId;
        bytes32 datasetId;
        uint64 recipientOrg; // PUBLIC (0) only for an OPEN-only authorisation
        uint32 purposeCode;
        bytes32 purposeCommitment; // SM3 commitment of the off-chain purpose / agreement text
        uint16 allowedSteps; // mask of (1 << step), a subset of AUTHORISABLE_STEPS
        uint64 expiresAt; // unix seconds; valid while block.timestamp < expiresAt
    }

    struct Authorisation {
        bytes32 datasetId;
        uint64 recipientOrg;
        uint32 purposeCode;
        uint16 allowedSteps;
        uint64 grantedAt;
        uint64 expiresAt;
        uint64 revokedAt; // 0 while not revoked
        bytes32 purposeCommitment;
    }

    /// @notice One logged activity, exactly as the staff member signs it.
    struct ActivityRecord {
        bytes32 activityId; // unique, e.g. SM3 of the off-chain activity record
        uint8 step;
        bytes32 datasetId; // entity used (0 for COLLECT)
        uint32 version; // version used (0 for COLLECT)
        uint64 startedAt;
        uint64 endedAt;
        bytes32 plan; // authorisation id where the step needs one, else 0
        uint64 recipientOrg; // SHARE, EXCHANGE or OPEN target, else 0
        bytes32 informedBy; // an earlier activity this one was informed by (SETTLE: the share), or 0
        bytes32 detail; // SM3 commitment of the off-chain activity record
        address staff; // SM2 address of the acting staff member (STAFF_OPERATOR of the caller org)
        bytes32 generatedDataset; // entity generated (COLLECT, PROCESS, ANALYZE), or 0
        bytes32 generatedCommitment;
    }

    struct ActivityInfo {
        uint8 step;
        uint64 org;
        uint64 recipientOrg;
        uint64 loggedAt;
        bytes32 datasetId;
    }

    IGovernance public immutable governance;
    /// @notice true when the GM precompile was found at deployment: SM2 signatures are checked on chain
    bool public immutable gmOnChain;

    mapping(bytes32 => Dataset) internal _datasets;
    mapping(bytes32 => mapping(uint32 => DatasetVersion)) internal _versions;
    mapping(bytes32 => Authorisation) internal _authorisations;
    mapping(bytes32 => bytes32[]) internal _authorisationsOf;
    mapping(bytes32 => uint64[]) internal _recipientsOf;
    mapping(bytes32 => mapping(uint64 => bool)) internal _isRecipient;
    mapping(bytes32 => ActivityInfo) internal _activities;

    event DatasetCreated(bytes32 indexed datasetId, uint64 indexed ownerOrg, bytes32 indexed activityId);
    event ActivityLogged(
        bytes32 indexed activityId,
        uint8 indexed step,
        uint64 indexed org,
        ActivityRecord record,
        bytes32 r,
        bytes32 s,
        bool signatureVerified
    );
    // PROV-DM relations
    event Used(bytes32 indexed activityId, bytes32 indexed datasetId, uint32 version);
    event WasGeneratedBy(bytes32 indexed datasetId, uint32 version, bytes32 indexed activityId, bytes32 commitment);
    event WasDerivedFrom(
        bytes32 indexed datasetId, uint32 version, bytes32 indexed sourceDatasetId, uint32 sourceVersion
    );
    event WasAttributedTo(bytes32 indexed datasetId, uint32 version, uint64 indexed orgId);
    event WasAssociatedWith(bytes32 indexed activityId, address indexed staff, bytes32 indexed plan);
    event ActedOnBehalfOf(address indexed staff, uint64 indexed orgId, bytes32 indexed activityId);
    event WasInformedBy(bytes32 indexed activityId, bytes32 indexed informant);
    event WasInvalidatedBy(bytes32 indexed datasetId, bytes32 indexed activityId, uint64 at);
    // plans
    event AuthorisationGranted(
        bytes32 indexed authorisationId,
        bytes32 indexed datasetId,
        uint64 indexed recipientOrg,
        uint32 purposeCode,
        bytes32 purposeCommitment,
        uint16 allowedSteps,
        uint64 expiresAt
    );
    event AuthorisationRevoked(bytes32 indexed authorisationId, bytes32 indexed datasetId, uint64 at);

    constructor(IGovernance governance_) {
        require(address(governance_) != address(0), "DSL: governance is zero");
        governance = governance_;
        gmOnChain = GmCrypto.available();
    }

    // ------------------------------------------------------------------ authorisations (plans)

    /// @notice Grants an authorisation on a dataset. Caller: an account of the dataset's owner org.
    function grantAuthorisation(AuthorisationGrant calldata g) external {
        uint64 callerOrg = _callerOrg();
        Dataset storage ds = _datasets[g.datasetId];
        require(ds.ownerOrg != 0, "DSL: unknown dataset");
        require(callerOrg == ds.ownerOrg, "DSL: caller org is not the dataset owner");
        require(ds.destroyedAt == 0, "DSL: dataset destroyed");
        require(g.authorisationId != bytes32(0), "DSL: authorisation id is zero");
        _checkNamespace(g.authorisationId, callerOrg);
        require(_authorisations[g.authorisationId].grantedAt == 0, "DSL: authorisation id already used");
        require(
            g.allowedSteps != 0 && g.allowedSteps & ~AUTHORISABLE_STEPS == 0, "DSL: bad authorisation step scope"
        );
        if (g.recipientOrg == PUBLIC) {
            require(g.allowedSteps == uint16(1 << OPEN), "DSL: a public authorisation may only open");
        } else {
            require(g.recipientOrg != callerOrg, "DSL: recipient is the owner");
            require(governance.orgActive(g.recipientOrg), "DSL: recipient org inactive");
        }
        require(g.expiresAt > block.timestamp, "DSL: expiry not in the future");
        _checkControl(ds.controlPlan, g.allowedSteps); // no more than the source owners allowed
        _authorisations[g.authorisationId] = Authorisation({
            datasetId: g.datasetId,
            recipientOrg: g.recipientOrg,
            purposeCode: g.purposeCode,
            allowedSteps: g.allowedSteps,
            grantedAt: uint64(block.timestamp),
            expiresAt: g.expiresAt,
            revokedAt: 0,
            purposeCommitment: g.purposeCommitment
        });
        _authorisationsOf[g.datasetId].push(g.authorisationId);
        emit AuthorisationGranted(
            g.authorisationId,
            g.datasetId,
            g.recipientOrg,
            g.purposeCode,
            g.purposeCommitment,
            g.allowedSteps,
            g.expiresAt
        );
    }

    /// @notice Revokes an authorisation. Caller: an account of the dataset's owner org.
    function revokeAuthorisation(bytes32 authorisationId) external {
        uint64 callerOrg = _callerOrg();
        Authorisation storage au = _authorisations[authorisationId];
        require(au.grantedAt != 0, "DSL: unknown authorisation");
        require(callerOrg == _datasets[au.datasetId].ownerOrg, "DSL: caller org is not the dataset owner");
        require(au.revokedAt == 0, "DSL: authorisation already revoked");
        au.revokedAt = uint64(block.timestamp);
        emit AuthorisationRevoked(authorisationId, au.datasetId, uint64(block.timestamp));
    }

    // ------------------------------------------------------------------ activities

    /// @notice Logs one lifecycle activity (see the step table in the contract notice).
    ///   Caller: an account of a department; `record.staff` an active operator of that department whose
    ///   SM2 signature (r, s) covers SM3(activityPreimage(record)).
    function logActivity(ActivityRecord calldata a, bytes32 r, bytes32 s) external {
        uint64 callerOrg = _callerOrg();
        require(governance.orgRoles(callerOrg) & Roles.ORG_DEPARTMENT != 0, "DSL: caller org is not a department");
        require(a.step >= COLLECT && a.step <= DESTROY, "DSL: unknown lifecycle step");
        require(a.activityId != bytes32(0), "DSL: activity id is zero");
        _checkNamespace(a.activityId, callerOrg);
        require(_activities[a.activityId].loggedAt == 0, "DSL: activity id already used");
        require(a.startedAt <= a.endedAt && a.endedAt <= block.timestamp, "DSL: bad activity time range");
        if (a.informedBy != bytes32(0)) {
            require(_activities[a.informedBy].loggedAt != 0, "DSL: unknown informing activity");
        }
        bool verified = _checkStaff(a, callerOrg, r, s);

        if (a.step == COLLECT) {
            _collect(a, callerOrg);
        } else {
            _use(a, callerOrg);
        }
        _activities[a.activityId] = ActivityInfo({
            step: a.step,
            org: callerOrg,
            recipientOrg: a.recipientOrg,
            loggedAt: uint64(block.timestamp),
            datasetId: a.step == COLLECT ? a.generatedDataset : a.datasetId
        });
        emit ActivityLogged(a.activityId, a.step, callerOrg, a, r, s, verified);
        emit WasAssociatedWith(a.activityId, a.staff, a.plan);
        emit ActedOnBehalfOf(a.staff, callerOrg, a.activityId);
        if (a.informedBy != bytes32(0)) {
            emit WasInformedBy(a.activityId, a.informedBy);
        }
    }

    // ------------------------------------------------------------------ views

    /// @notice The bytes whose SM3 the staff member signs for `record` (M = SM3(activityPreimage)).
    function activityPreimage(ActivityRecord calldata record) external view returns (bytes memory) {
        return abi.encode(ACTIVITY_TAG, block.chainid, address(this), record);
    }

    function dataset(bytes32 datasetId) external view returns (Dataset memory) {
        return _datasets[datasetId];
    }

    function datasetVersion(bytes32 datasetId, uint32 version) external view returns (DatasetVersion memory) {
        return _versions[datasetId][version];
    }

    function authorisation(bytes32 authorisationId) external view returns (Authorisation memory) {
        return _authorisations[authorisationId];
    }

    /// @notice Every authorisation ever granted on the dataset, in grant order (revoked and expired included).
    function authorisationsOf(bytes32 datasetId) external view returns (bytes32[] memory) {
        return _authorisationsOf[datasetId];
    }

    /// @notice Every org that received the dataset by SHARE, EXCHANGE or OPEN, in first-receipt order
    ///   (PUBLIC = 0 when it was opened to the public).
    function recipientsOf(bytes32 datasetId) external view returns (uint64[] memory) {
        return _recipientsOf[datasetId];
    }

    /// @notice Whether the dataset was destroyed, when, and by which activity.
    function destruction(bytes32 datasetId) external view returns (bool destroyed, uint64 at, bytes32 activityId) {
        Dataset storage ds = _datasets[datasetId];
        return (ds.destroyedAt != 0, ds.destroyedAt, ds.destroyedBy);
    }

    /// @notice True while the authorisation is granted, unrevoked, unexpired and its dataset not destroyed.
    function authorisationValid(bytes32 authorisationId) external view returns (bool) {
        Authorisation storage au = _authorisations[authorisationId];
        return au.grantedAt != 0 && au.revokedAt == 0 && block.timestamp < au.expiresAt
            && _datasets[au.datasetId].destroyedAt == 0;
    }

    function activity(bytes32 activityId) external view returns (ActivityInfo memory) {
        return _activities[activityId];
    }

    /// @notice The organisation whose namespace `id` is in (its first 8 bytes, big-endian).
    function namespaceOf(bytes32 id) public pure returns (uint64) {
        return uint64(bytes8(id));
    }

    /// @notice True when a derived dataset is frozen: an authorisation governing it was revoked or expired, or
    ///   its dataset destroyed (only DESTROY is left to the derivative's owner).
    function frozen(bytes32 datasetId) external view returns (bool) {
        return bytes(_controlFault(_datasets[datasetId].controlPlan, 0)).length != 0;
    }

    // ------------------------------------------------------------------ internals

    function _callerOrg() internal view returns (uint64 orgId) {
        orgId = governance.orgOfAccount(msg.sender);
        require(orgId != 0, "DSL: caller is not a member account");
        require(governance.orgActive(orgId), "DSL: caller org inactive");
    }

    function _checkNamespace(bytes32 id, uint64 org) internal pure {
        require(namespaceOf(id) == org, "DSL: id not in the caller org's namespace");
    }

    /// @dev every authorisation governing a dataset (from its controlPlan up the chain) must be live and cover
    ///   `steps` (a mask; 0 checks liveness only)
    function _checkControl(bytes32 plan, uint16 steps) internal view {
        string memory fault = _controlFault(plan, steps);
        require(bytes(fault).length == 0, fault);
    }

    /// @dev why the chain of authorisations from `plan` does not allow `steps` now ("" when it does); the chain
    ///   is at most MAX_CONTROL_DEPTH long (enforced when a dataset is derived)
    function _controlFault(bytes32 plan, uint16 steps) internal view returns (string memory) {
        for (uint256 i = 0; plan != bytes32(0) && i < MAX_CONTROL_DEPTH; i++) {
            Authorisation storage au = _authorisations[plan];
            Dataset storage source = _datasets[au.datasetId];
            if (au.revokedAt != 0) return "DSL: source authorisation revoked";
            if (block.timestamp >= au.expiresAt) return "DSL: source authorisation expired";
            if (source.destroyedAt != 0) return "DSL: source dataset destroyed";
            if (au.allowedSteps & steps != steps) return "DSL: source authorisation does not cover this step";
            plan = source.controlPlan;
        }
        return "";
    }

    function _checkStaff(ActivityRecord calldata a, uint64 callerOrg, bytes32 r, bytes32 s)
        internal
        view
        returns (bool verified)
    {
        (uint64 staffOrg, uint256 roles, bool active, bytes memory key) = governance.staffInfo(a.staff);
        require(staffOrg == callerOrg, "DSL: staff is not of the caller org");
        require(active, "DSL: staff inactive");
        require(roles & Roles.STAFF_OPERATOR != 0, "DSL: staff is not an operator");
        require(r != bytes32(0) && s != bytes32(0), "DSL: missing staff signature");
        if (gmOnChain) {
            bytes32 message = GmCrypto.sm3(abi.encode(ACTIVITY_TAG, block.chainid, address(this), a));
            (bool ok, address signer) = GmCrypto.sm2Verify(message, key, r, s);
            require(ok && signer == a.staff, "DSL: invalid staff signature");
            verified = true;
        }
    }

    function _collect(ActivityRecord calldata a, uint64 callerOrg) internal {
        require(a.datasetId == bytes32(0) && a.version == 0, "DSL: collect uses no dataset");
        require(a.plan == bytes32(0), "DSL: step takes no authorisation");
        require(a.recipientOrg == 0, "DSL: step has no recipient");
        require(a.generatedDataset != bytes32(0), "DSL: collect must generate a dataset");
        _newDataset(a, callerOrg);
    }

    function _use(ActivityRecord calldata a, uint64 callerOrg) internal {
        Dataset storage ds = _datasets[a.datasetId];
        require(ds.ownerOrg != 0, "DSL: unknown dataset");
        require(a.version >= 1 && a.version <= ds.latestVersion, "DSL: unknown dataset version");
        require(ds.destroyedAt == 0, "DSL: dataset destroyed");
        uint8 step = a.step;
        bool owner = callerOrg == ds.ownerOrg;
        bool derives = step == PROCESS || step == ANALYZE;
        bool shares = step == SHARE || step == EXCHANGE || step == OPEN;
        if (step != DESTROY) {
            // a derivative moves only while its source owners allow it; destroying it is always its owner's
            _checkControl(ds.controlPlan, (uint16(1) << step) & AUTHORISABLE_STEPS);
        }

        if (derives && !owner) {
            _checkPlan(a, callerOrg);
        } else if (step != SETTLE) {
            require(owner, "DSL: caller org is not the dataset owner");
            if (shares) {
                require(step == OPEN || a.recipientOrg != 0, "DSL: share needs a recipient org");
                // a suspended (or unknown) org receives nothing, whatever it was authorised before
                require(
                    a.recipientOrg == PUBLIC || governance.orgActive(a.recipientOrg), "DSL: recipient org inactive"
                );
                _checkPlan(a, a.recipientOrg);
            } else {
                require(a.plan == bytes32(0), "DSL: step takes no authorisation");
            }
        } else {
            require(a.plan == bytes32(0), "DSL: step takes no authorisation");
            ActivityInfo storage shareInfo = _activities[a.informedBy];
            uint8 s = shareInfo.step;
            require(
                a.informedBy != bytes32(0) && (s == SHARE || s == EXCHANGE || s == OPEN)
                    && shareInfo.datasetId == a.datasetId,
                "DSL: settle must follow a share of this dataset"
            );
            require(owner || callerOrg == shareInfo.recipientOrg, "DSL: caller org is not a party to the share");
        }
        if (!shares) {
            require(a.recipientOrg == 0, "DSL: step has no recipient");
        }
        emit Used(a.activityId, a.datasetId, a.version);

        if (a.generatedDataset != bytes32(0)) {
            require(derives, "DSL: step generates no dataset");
            require(
                a.generatedCommitment != _versions[a.datasetId][a.version].commitment,
                "DSL: derived commitment equals the source's"
            );
            if (a.generatedDataset == a.datasetId) {
                require(owner, "DSL: only the owner versions a dataset");
                _newVersion(a, ds);
            } else {
                _newDataset(a, callerOrg);
                _recordControl(a, ds, owner);
            }
        } else if (shares) {
            if (!_isRecipient[a.datasetId][a.recipientOrg]) {
                _isRecipient[a.datasetId][a.recipientOrg] = true;
                _recipientsOf[a.datasetId].push(a.recipientOrg);
            }
        } else if (step == DESTROY) {
            ds.destroyedAt = uint64(block.timestamp);
            ds.destroyedBy = a.activityId;
            emit WasInvalidatedBy(a.datasetId, a.activityId, uint64(block.timestamp));
        }
    }

    /// @dev the plan must be a live authorisation on a.datasetId for `recipient` covering a.step
    function _checkPlan(ActivityRecord calldata a, uint64 recipient) internal view {
        require(a.plan != bytes32(0), "DSL: authorisation required");
        Authorisation storage au = _authorisations[a.plan];
        require(au.grantedAt != 0, "DSL: unknown authorisation");
        require(au.datasetId == a.datasetId, "DSL: authorisation is for another dataset");
        require(au.recipientOrg == recipient, "DSL: authorisation is for another recipient");
        require(au.allowedSteps & (uint16(1) << a.step) != 0, "DSL: authorisation does not cover this step");
        require(au.revokedAt == 0, "DSL: authorisation revoked");
        require(block.timestamp < au.expiresAt, "DSL: authorisation expired");
    }

    /// @dev a derived dataset records its source and plan, and inherits the source's control; one derived by a
    ///   recipient is governed by the plan it was derived under, on top of what governs the source
    function _recordControl(ActivityRecord calldata a, Dataset storage source, bool byOwner) internal {
        Dataset storage derived = _datasets[a.generatedDataset];
        derived.derivedFrom = a.datasetId;
        if (byOwner) {
            derived.controlPlan = source.controlPlan;
            derived.controlDepth = source.controlDepth;
        } else {
            require(source.controlDepth < MAX_CONTROL_DEPTH, "DSL: derivation chain too deep");
            derived.sourcePlan = a.plan;
            derived.controlPlan = a.plan;
            derived.controlDepth = source.controlDepth + 1;
        }
    }

    function _newDataset(ActivityRecord calldata a, uint64 ownerOrg) internal {
        bytes32 id = a.generatedDataset;
        _checkNamespace(id, ownerOrg);
        require(_datasets[id].ownerOrg == 0, "DSL: dataset already exists");
        require(a.generatedCommitment != bytes32(0), "DSL: empty commitment");
        _datasets[id] = Dataset({
            ownerOrg: ownerOrg,
            latestVersion: 1,
            createdAt: uint64(block.timestamp),
            destroyedAt: 0,
            destroyedBy: bytes32(0),
            derivedFrom: bytes32(0),
            sourcePlan: bytes32(0),
            controlPlan: bytes32(0),
            controlDepth: 0
        });
        _recordVersion(a, id, 1);
        emit DatasetCreated(id, ownerOrg, a.activityId);
        emit WasAttributedTo(id, 1, ownerOrg);
    }

    function _newVersion(ActivityRecord calldata a, Dataset storage ds) internal {
        require(a.generatedCommitment != bytes32(0), "DSL: empty commitment");
        uint32 v = ds.latestVersion + 1;
        ds.latestVersion = v;
        _recordVersion(a, a.datasetId, v);
        emit WasAttributedTo(a.datasetId, v, ds.ownerOrg);
    }

    function _recordVersion(ActivityRecord calldata a, bytes32 id, uint32 v) internal {
        _versions[id][v] = DatasetVersion({
            commitment: a.generatedCommitment,
            generatedBy: a.activityId,
            derivedFromDataset: a.datasetId,
            derivedFromVersion: a.version,
            generatedAt: uint64(block.timestamp)
        });
        emit WasGeneratedBy(id, v, a.activityId, a.generatedCommitment);
        if (a.datasetId != bytes32(0)) {
            emit WasDerivedFrom(id, v, a.datasetId, a.version);
        }
    }
}
