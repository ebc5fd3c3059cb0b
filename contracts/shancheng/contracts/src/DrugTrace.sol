// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IGovernance} from "./interfaces/IGovernance.sol";
import {Roles} from "./lib/Roles.sol";

/// @title DrugTrace — per-unit drug traceability (药品追溯), units keyed by maker and trace code.
/// @notice A manufacturer registers the commitment of each trace code (20-digit NMPA code or GS1 element
///   string: SM3 over a tag and the normalised code, see tests/contracts/_domain_messages.py); the code itself
///   is not stored. The contract keys the unit by
///     unitKey(maker, commitment) = keccak256(abi.encode(UNIT_TAG, maker, commitment))
///   with `maker` the registering organisation, derived here from the sender: a unit is bound to its maker,
///   so another manufacturer registering the same code creates a different unit and cannot block (squat) the
///   real maker's registration. Every other operation takes unit keys. A scanned code gives its commitment,
///   its drug identifier (NMPA drug id / GTIN) gives the marketing-authorisation holder, and the two give
///   exactly one unit key. Lifecycle (domain/drug-trace.md):
///     register (101)            -> GENERATED, held by the registering manufacturer (the MAH)
///     aggregate / disaggregate  GENERATED|RECEIVED <-> AGGREGATED (packed in a parent, moves with it)
///     ship (201/203/207)        GENERATED|RECEIVED -> SHIPPED to a named receiver org; custody stays
///     receiveShipment (102/104) SHIPPED -> RECEIVED; only the named receiver; custody moves to it
///     returnOut (202)           RECEIVED -> RETURNED to a named org, or a shipment refused back to its sender
///     acceptReturn (103)        RETURNED -> RECEIVED by the org it was returned to
///     dispense (201)            -> DISPENSED, terminal, exactly once (pharmacy or hospital holder)
///     recall (211)              -> RECALLED by the holder, the MAH or a regulator
///     sample (206)              -> SAMPLED by the holder or a regulator
///     requestDestruction (205)  -> DESTRUCTION_PENDING (executor = holder, names a supervising regulator)
///     confirmDestruction (205)  -> DESTROYED by that supervising regulator
///   An aggregated unit's custody is its top-level parent's: shipping a case moves everything in it with one
///   storage write. A unit inside a parent may be sold, recalled or sampled; then every ancestor counts a
///   removed unit inside and cannot ship or be returned until the removed unit is disaggregated.
///
///   Batches: every operation takes hundreds of codes. A code that breaks a rule (unknown code = possible
///   counterfeit, second sale = 回流药, wrong holder, ...) is refused with a CodeRefused(code, billType,
///   reason) event and the rest of the batch proceeds (the batch's TraceBatch event counts accepted and
///   refused codes); with `strict` the whole transaction reverts with the reason text instead. Rules about
///   the call itself (sender, roles, bill type, counterparty, empty batch) always revert.
contract DrugTrace {
    enum UnitState {
        NONE,
        GENERATED,
        AGGREGATED,
        SHIPPED,
        RECEIVED,
        RETURNED,
        DESTRUCTION_PENDING,
        DISPENSED,
        RECALLED,
        SAMPLED,
        DESTROYED
    }

    enum Refusal {
        NONE,
        UNKNOWN_CODE,
        ALREADY_REGISTERED,
        ALREADY_DISPENSED,
        TERMINAL,
        IN_TRANSIT,
        PACKED_IN_PARENT,
        NOT_HOLDER,
        REMOVED_CHILD_INSIDE,
        NOT_RECEIVER,
        NOT_IN_TRANSIT,
        HAS_CHILDREN,
        LEVEL_NOT_BELOW_PARENT,
        NOT_A_CHILD,
        RETURN_TO_SENDER_ONLY,
        NOT_AUTHORISED,
        TOO_MANY_CHILDREN,
        ZERO_CODE
    }

    struct Unit {
        // slot 0
        uint64 holder; // custodian org (for an aggregated unit: as of packing; see custodyOf)
        uint64 pending; // receiver of a shipment / return, or supervisor of a pending destruction
        uint64 owner; // registering manufacturer (marketing-authorisation holder)
        UnitState state;
        uint8 level; // 1 smallest sale unit, 2 middle pack, 3 case
        uint24 removedInside; // units inside (at any depth) that were sold, recalled, sampled or destroyed
        uint16 childCount;
        // slot 1
        bytes32 parent;
    }

    // bill (event) types of the national trace platforms
    uint16 public constant BILL_PRODUCTION_IN = 101;
    uint16 public constant BILL_PURCHASE_IN = 102;
    uint16 public constant BILL_RETURN_IN = 103;
    uint16 public constant BILL_TRANSFER_IN = 104;
    uint16 public constant BILL_SALES_OUT = 201;
    uint16 public constant BILL_RETURN_OUT = 202;
    uint16 public constant BILL_TRANSFER_OUT = 203;
    uint16 public constant BILL_DESTRUCTION = 205;
    uint16 public constant BILL_SAMPLING = 206;
    uint16 public constant BILL_DIRECT_SHIPMENT = 207;
    uint16 public constant BILL_RECALL_OUT = 211;
    /// @dev not a bill type: aggregation / disaggregation refusals carry billType 0
    uint16 public constant BILL_NONE = 0;

    /// @notice the domain tag of unit keys (see unitKey)
    bytes32 public constant UNIT_TAG = keccak256("shancheng.trace.unit.v1");

    uint256 public constant MAX_BATCH = 1000;
    uint8 public constant MAX_LEVEL = 3;
    uint256 internal constant TRACE_ORGS = Roles.ORG_MANUFACTURER | Roles.ORG_DISTRIBUTOR | Roles.ORG_LOGISTICS
        | Roles.ORG_PHARMACY | Roles.ORG_HOSPITAL;

    IGovernance public immutable governance;

    mapping(bytes32 unitKey => Unit) internal _units;

    /// @notice A code accepted by a batch operation: acting org and counterparty (receiver, sender,
    ///   supervisor or executor; 0 when none).
    event UnitEvent(bytes32 indexed code, uint16 indexed billType, uint64 actingOrg, uint64 counterparty);
    /// @notice A code refused by a non-strict batch; the rest of the batch went ahead.
    event CodeRefused(bytes32 indexed code, uint16 indexed billType, Refusal reason);
    /// @notice One per batch operation; `docRef` is the commitment of the off-chain bill / EPCIS event.
    event TraceBatch(
        uint64 indexed actingOrg, uint16 indexed billType, uint64 counterparty, bytes32 docRef, uint32 accepted, uint32 refused
    );
    /// @notice Parent-child relation added (packed) or deleted (unpacked): EPCIS AggregationEvent ADD / DELETE.
    event Aggregation(bytes32 indexed parent, bytes32 indexed child, bool added);

    constructor(IGovernance governance_) {
        require(address(governance_) != address(0), "Trace: governance is zero");
        governance = governance_;
    }

    // ------------------------------------------------------------------ views

    /// @notice The key of the unit manufacturer `maker` registered under trace-code commitment `codeCommitment`.
    function unitKey(uint64 maker, bytes32 codeCommitment) public pure returns (bytes32) {
        return keccak256(abi.encode(UNIT_TAG, maker, codeCommitment));
    }

    function unitOf(bytes32 code) external view returns (Unit memory) {
        return _units[code];
    }

    /// @notice The unit of trace-code commitment `codeCommitment` registered by manufacturer `maker`.
    function unitOfCode(uint64 maker, bytes32 codeCommitment) external view returns (Unit memory) {
        return _units[unitKey(maker, codeCommitment)];
    }

    /// @notice The unit's own state, and the state and holder that govern it: for a packed unit those of
    ///   its top-level parent (or of the first ancestor in a terminal state).
    function custodyOf(bytes32 code) external view returns (UnitState own, UnitState effective, uint64 holder) {
        own = _units[code].state;
        Unit storage top = _top(code);
        return (own, top.state, top.holder);
    }

    /// @notice The text a strict batch reverts with for `reason`.
    function refusalText(Refusal reason) public pure returns (string memory) {
        if (reason == Refusal.UNKNOWN_CODE) return "Trace: unknown code";
        if (reason == Refusal.ALREADY_REGISTERED) return "Trace: code already registered";
        if (reason == Refusal.ALREADY_DISPENSED) return "Trace: already dispensed";
        if (reason == Refusal.TERMINAL) return "Trace: unit recalled, sampled or destroyed";
        if (reason == Refusal.IN_TRANSIT) return "Trace: unit in transit";
        if (reason == Refusal.PACKED_IN_PARENT) return "Trace: unit packed in a parent";
        if (reason == Refusal.NOT_HOLDER) return "Trace: sender org is not the holder";
        if (reason == Refusal.REMOVED_CHILD_INSIDE) return "Trace: sold or removed child inside; disaggregate first";
        if (reason == Refusal.NOT_RECEIVER) return "Trace: sender org is not the named receiver";
        if (reason == Refusal.NOT_IN_TRANSIT) return "Trace: unit not in transit";
        if (reason == Refusal.HAS_CHILDREN) return "Trace: unit has children; disaggregate first";
        if (reason == Refusal.LEVEL_NOT_BELOW_PARENT) return "Trace: child level must be below parent level";
        if (reason == Refusal.NOT_A_CHILD) return "Trace: not a child of this parent";
        if (reason == Refusal.RETURN_TO_SENDER_ONLY) return "Trace: a refused shipment returns to its sender";
        if (reason == Refusal.NOT_AUTHORISED) return "Trace: not holder, manufacturer or regulator";
        if (reason == Refusal.TOO_MANY_CHILDREN) return "Trace: too many children";
        if (reason == Refusal.ZERO_CODE) return "Trace: code is zero";
        return "";
    }

    // ------------------------------------------------------------------ batch operations

    /// @notice A manufacturer registers produced units of packaging `level` (101 production in), one per
    ///   trace-code commitment; each unit is keyed by unitKey(sender's org, commitment), the key every event
    ///   and every other operation uses.
    function register(bytes32[] calldata codeCommitments, uint8 level, bytes32 docRef, bool strict)
        external
        returns (uint256 accepted)
    {
        uint64 org = _actingOrg(Roles.ORG_MANUFACTURER, "Trace: org is not a manufacturer");
        require(level >= 1 && level <= MAX_LEVEL, "Trace: level must be 1 to 3");
        uint256 n = _batchSize(codeCommitments);
        for (uint256 i; i < n; ++i) {
            bytes32 commitment = codeCommitments[i];
            bytes32 key = commitment == bytes32(0) ? bytes32(0) : unitKey(org, commitment);
            Refusal r = _registerOne(key, org, level);
            if (r == Refusal.NONE) {
                ++accepted;
                emit UnitEvent(key, BILL_PRODUCTION_IN, org, 0);
            } else {
                _refuse(key, BILL_PRODUCTION_IN, r, strict);
            }
        }
        emit TraceBatch(org, BILL_PRODUCTION_IN, level, docRef, uint32(accepted), uint32(n - accepted));
    }

    /// @notice The holder ships units to `to`, which must accept them with `receiveShipment`.
    function ship(bytes32[] calldata codes, uint64 to, uint16 billType, bytes32 docRef, bool strict)
        external
        returns (uint256)
    {
        require(
            billType == BILL_SALES_OUT || billType == BILL_TRANSFER_OUT || billType == BILL_DIRECT_SHIPMENT,
            "Trace: ship bill must be 201, 203 or 207"
        );
        uint64 org = _actingOrg(TRACE_ORGS, "Trace: org takes no part in the supply chain");
        _requireCounterparty(to, org);
        return _batch(codes, strict, billType, org, to, docRef, _shipOne);
    }

    /// @notice The named receiver accepts shipped units; custody moves to it.
    function receiveShipment(bytes32[] calldata codes, uint16 billType, bytes32 docRef, bool strict) external returns (uint256) {
        require(billType == BILL_PURCHASE_IN || billType == BILL_TRANSFER_IN, "Trace: receive bill must be 102 or 104");
        uint64 org = _actingOrg(TRACE_ORGS, "Trace: org takes no part in the supply chain");
        return _batch(codes, strict, billType, org, 0, docRef, _receiveOne);
    }

    /// @notice Returns units to `to` (202): received units to a named org, or shipped units the sender's
    ///   receiver refuses back to their sender (then `to` must be that sender).
    function returnOut(bytes32[] calldata codes, uint64 to, bytes32 docRef, bool strict) external returns (uint256) {
        uint64 org = _actingOrg(TRACE_ORGS, "Trace: org takes no part in the supply chain");
        _requireCounterparty(to, org);
        return _batch(codes, strict, BILL_RETURN_OUT, org, to, docRef, _returnOne);
    }

    /// @notice The org units were returned to accepts them (103).
    function acceptReturn(bytes32[] calldata codes, bytes32 docRef, bool strict) external returns (uint256) {
        uint64 org = _actingOrg(TRACE_ORGS, "Trace: org takes no part in the supply chain");
        return _batch(codes, strict, BILL_RETURN_IN, org, 0, docRef, _acceptReturnOne);
    }

    /// @notice A pharmacy or hospital dispenses / sells units to patients: exactly once per unit.
    function dispense(bytes32[] calldata codes, bytes32 docRef, bool strict) external returns (uint256) {
        uint64 org = _actingOrg(Roles.ORG_PHARMACY | Roles.ORG_HOSPITAL, "Trace: org is not a pharmacy or hospital");
        return _batch(codes, strict, BILL_SALES_OUT, org, 0, docRef, _dispenseOne);
    }

    /// @notice Recall by the holder, the registering manufacturer or a regulator.
    function recall(bytes32[] calldata codes, bytes32 docRef, bool strict) external returns (uint256) {
        uint64 org = _actingOrg(TRACE_ORGS | Roles.ORG_REGULATOR, "Trace: org cannot recall");
        return _batch(codes, strict, BILL_RECALL_OUT, org, 0, docRef, _recallOne);
    }

    /// @notice Sampling (抽检) recorded by the holder or a regulator.
    function sample(bytes32[] calldata codes, bytes32 docRef, bool strict) external returns (uint256) {
        uint64 org = _actingOrg(TRACE_ORGS | Roles.ORG_REGULATOR, "Trace: org cannot sample");
        return _batch(codes, strict, BILL_SAMPLING, org, 0, docRef, _sampleOne);
    }

    /// @notice The holder (executor) asks regulator `supervisor` to witness the destruction of units.
    function requestDestruction(bytes32[] calldata codes, uint64 supervisor, bytes32 docRef, bool strict)
        external
        returns (uint256)
    {
        uint64 org = _actingOrg(TRACE_ORGS, "Trace: org takes no part in the supply chain");
        require(
            governance.orgActive(supervisor) && governance.orgRoles(supervisor) & Roles.ORG_REGULATOR != 0,
            "Trace: supervisor is not an active regulator"
        );
        return _batch(codes, strict, BILL_DESTRUCTION, org, supervisor, docRef, _requestDestructionOne);
    }

    /// @notice The supervising regulator confirms the destruction it witnessed.
    function confirmDestruction(bytes32[] calldata codes, bytes32 docRef, bool strict) external returns (uint256) {
        uint64 org = _actingOrg(Roles.ORG_REGULATOR, "Trace: org is not a regulator");
        return _batch(codes, strict, BILL_DESTRUCTION, org, 0, docRef, _confirmDestructionOne);
    }

    /// @notice Packs `children` into `parent` (both held by the sender, child level below parent level).
    function aggregate(bytes32 parentCode, bytes32[] calldata children, bytes32 docRef, bool strict)
        external
        returns (uint256 accepted)
    {
        uint64 org = _actingOrg(TRACE_ORGS, "Trace: org takes no part in the supply chain");
        Unit storage parent = _units[parentCode];
        Refusal r = _custodyRefusal(parent, org);
        require(r == Refusal.NONE, refusalText(r));
        uint256 n = _batchSize(children);
        for (uint256 i; i < n; ++i) {
            bytes32 code = children[i];
            r = _aggregateOne(parentCode, parent, code, org);
            if (r == Refusal.NONE) {
                ++accepted;
                emit Aggregation(parentCode, code, true);
            } else {
                _refuse(code, BILL_NONE, r, strict);
            }
        }
        emit TraceBatch(org, BILL_NONE, 0, docRef, uint32(accepted), uint32(n - accepted));
    }

    /// @notice Unpacks `children` from `parent`, whose top-level unit the sender holds. Sold or removed
    ///   children may be unpacked too, which clears the parent for shipping.
    function disaggregate(bytes32 parentCode, bytes32[] calldata children, bytes32 docRef, bool strict)
        external
        returns (uint256 accepted)
    {
        uint64 org = _actingOrg(TRACE_ORGS, "Trace: org takes no part in the supply chain");
        Unit storage parent = _units[parentCode];
        require(parent.state != UnitState.NONE, "Trace: unknown code");
        require(parent.childCount != 0, "Trace: parent has no children");
        Unit storage top = _top(parentCode);
        Refusal r = _custodyRefusal(top, org);
        require(r == Refusal.NONE, refusalText(r));
        uint256 n = _batchSize(children);
        for (uint256 i; i < n; ++i) {
            bytes32 code = children[i];
            r = _disaggregateOne(parentCode, parent, code, top);
            if (r == Refusal.NONE) {
                ++accepted;
                emit Aggregation(parentCode, code, false);
            } else {
                _refuse(code, BILL_NONE, r, strict);
            }
        }
        emit TraceBatch(org, BILL_NONE, 0, docRef, uint32(accepted), uint32(n - accepted));
    }

    // ------------------------------------------------------------------ per-code rules

    function _registerOne(bytes32 key, uint64 org, uint8 level) internal returns (Refusal) {
        if (key == bytes32(0)) return Refusal.ZERO_CODE;
        Unit storage u = _units[key];
        if (u.state != UnitState.NONE) return Refusal.ALREADY_REGISTERED;
        u.holder = org;
        u.owner = org;
        u.level = level;
        u.state = UnitState.GENERATED;
        return Refusal.NONE;
    }

    function _shipOne(bytes32 code, uint64 org, uint64 to) internal returns (Refusal, uint64) {
        Unit storage u = _units[code];
        Refusal r = _custodyRefusal(u, org);
        if (r != Refusal.NONE) return (r, 0);
        if (u.removedInside != 0) return (Refusal.REMOVED_CHILD_INSIDE, 0);
        u.state = UnitState.SHIPPED;
        u.pending = to;
        return (Refusal.NONE, to);
    }

    function _receiveOne(bytes32 code, uint64 org, uint64) internal returns (Refusal, uint64) {
        return _takeCustody(_units[code], org, UnitState.SHIPPED);
    }

    /// @dev The named receiver accepts a unit in transit (`inTransit`: SHIPPED or RETURNED); returns the sender.
    function _takeCustody(Unit storage u, uint64 org, UnitState inTransit) private returns (Refusal, uint64) {
        if (u.state != inTransit) return (_notInTransit(u.state), 0);
        if (u.pending != org) return (Refusal.NOT_RECEIVER, 0);
        uint64 from = u.holder;
        u.holder = org;
        u.pending = 0;
        u.state = UnitState.RECEIVED;
        return (Refusal.NONE, from);
    }

    function _returnOne(bytes32 code, uint64 org, uint64 to) internal returns (Refusal, uint64) {
        Unit storage u = _units[code];
        if (u.state == UnitState.SHIPPED && u.pending == org) {
            // the named receiver refuses the shipment: it goes back to its sender, who still holds it
            if (to != u.holder) return (Refusal.RETURN_TO_SENDER_ONLY, 0);
        } else {
            Refusal r = _custodyRefusal(u, org);
            if (r != Refusal.NONE) return (r, 0);
            if (u.removedInside != 0) return (Refusal.REMOVED_CHILD_INSIDE, 0);
        }
        u.state = UnitState.RETURNED;
        u.pending = to;
        return (Refusal.NONE, to);
    }

    function _acceptReturnOne(bytes32 code, uint64 org, uint64) internal returns (Refusal, uint64) {
        return _takeCustody(_units[code], org, UnitState.RETURNED);
    }

    function _dispenseOne(bytes32 code, uint64 org, uint64) internal returns (Refusal, uint64) {
        Unit storage u = _units[code];
        Refusal r = _effectiveCustody(code, u, org);
        if (r != Refusal.NONE) return (r, 0);
        if (u.childCount != 0) return (Refusal.HAS_CHILDREN, 0);
        _remove(u, UnitState.DISPENSED);
        return (Refusal.NONE, 0);
    }

    function _recallOne(bytes32 code, uint64 org, uint64) internal returns (Refusal, uint64) {
        Unit storage u = _units[code];
        Refusal r = _liveRefusal(u.state);
        if (r != Refusal.NONE) return (r, 0);
        Unit storage top = _top(code);
        if (_isTerminal(top.state)) return (Refusal.TERMINAL, 0);
        if (top.holder != org && u.owner != org && !_isRegulator(org)) return (Refusal.NOT_AUTHORISED, 0);
        _remove(u, UnitState.RECALLED);
        return (Refusal.NONE, 0);
    }

    function _sampleOne(bytes32 code, uint64 org, uint64) internal returns (Refusal, uint64) {
        Unit storage u = _units[code];
        if (_isRegulator(org)) {
            Refusal live = _liveRefusal(u.state);
            if (live != Refusal.NONE) return (live, 0);
            if (_isTerminal(_top(code).state)) return (Refusal.TERMINAL, 0);
        } else {
            Refusal r = _effectiveCustody(code, u, org);
            if (r != Refusal.NONE) return (r, 0);
        }
        _remove(u, UnitState.SAMPLED);
        return (Refusal.NONE, 0);
    }

    function _requestDestructionOne(bytes32 code, uint64 org, uint64 supervisor) internal returns (Refusal, uint64) {
        Unit storage u = _units[code];
        Refusal r = _custodyRefusal(u, org);
        if (r != Refusal.NONE) return (r, 0);
        u.state = UnitState.DESTRUCTION_PENDING;
        u.pending = supervisor;
        return (Refusal.NONE, supervisor);
    }

    function _confirmDestructionOne(bytes32 code, uint64 org, uint64) internal returns (Refusal, uint64) {
        Unit storage u = _units[code];
        if (u.state != UnitState.DESTRUCTION_PENDING) return (_notInTransit(u.state), 0);
        if (u.pending != org) return (Refusal.NOT_RECEIVER, 0);
        u.state = UnitState.DESTROYED;
        return (Refusal.NONE, u.holder); // counterparty = the executor
    }

    function _aggregateOne(bytes32 parentCode, Unit storage parent, bytes32 code, uint64 org)
        internal
        returns (Refusal)
    {
        Unit storage u = _units[code];
        Refusal r = _custodyRefusal(u, org);
        if (r != Refusal.NONE) return r;
        if (u.level >= parent.level) return Refusal.LEVEL_NOT_BELOW_PARENT;
        if (u.removedInside != 0) return Refusal.REMOVED_CHILD_INSIDE;
        if (parent.childCount == type(uint16).max) return Refusal.TOO_MANY_CHILDREN;
        parent.childCount += 1;
        u.state = UnitState.AGGREGATED;
        u.parent = parentCode;
        return Refusal.NONE;
    }

    function _disaggregateOne(bytes32 parentCode, Unit storage parent, bytes32 code, Unit storage top)
        internal
        returns (Refusal)
    {
        Unit storage u = _units[code];
        if (u.state == UnitState.NONE) return Refusal.UNKNOWN_CODE;
        if (u.parent != parentCode) return Refusal.NOT_A_CHILD;
        uint256 removed = u.removedInside;
        if (u.state == UnitState.AGGREGATED) {
            u.state = top.state;
            u.holder = top.holder;
        } else {
            removed += 1; // the child itself was sold, recalled or sampled while packed
        }
        u.parent = bytes32(0);
        parent.childCount -= 1;
        if (removed != 0) {
            _addRemoved(parentCode, removed, false);
        }
        return Refusal.NONE;
    }

    // ------------------------------------------------------------------ internals

    function _batch(
        bytes32[] calldata codes,
        bool strict,
        uint16 billType,
        uint64 org,
        uint64 arg,
        bytes32 docRef,
        function(bytes32, uint64, uint64) internal returns (Refusal, uint64) op
    ) internal returns (uint256 accepted) {
        uint256 n = _batchSize(codes);
        for (uint256 i; i < n; ++i) {
            bytes32 code = codes[i];
            (Refusal r, uint64 counterparty) = op(code, org, arg);
            if (r == Refusal.NONE) {
                ++accepted;
                emit UnitEvent(code, billType, org, counterparty);
            } else {
                _refuse(code, billType, r, strict);
            }
        }
        emit TraceBatch(org, billType, arg, docRef, uint32(accepted), uint32(n - accepted));
    }

    function _batchSize(bytes32[] calldata codes) internal pure returns (uint256 n) {
        n = codes.length;
        require(n != 0, "Trace: empty batch");
        require(n <= MAX_BATCH, "Trace: batch larger than 1000 codes");
    }

    function _refuse(bytes32 code, uint16 billType, Refusal r, bool strict) internal {
        if (strict) {
            revert(refusalText(r));
        }
        emit CodeRefused(code, billType, r);
    }

    function _actingOrg(uint256 orgRoles, string memory roleReason) internal view returns (uint64 org) {
        org = governance.orgOfAccount(msg.sender);
        require(org != 0, "Trace: sender is not a member account");
        require(governance.orgActive(org), "Trace: sender org is not active");
        require(governance.orgRoles(org) & orgRoles != 0, roleReason);
    }

    function _requireCounterparty(uint64 to, uint64 org) internal view {
        require(to != org, "Trace: counterparty is the sender org");
        require(
            governance.orgActive(to) && governance.orgRoles(to) & TRACE_ORGS != 0,
            "Trace: counterparty is not an active supply-chain org"
        );
    }

    function _isRegulator(uint64 org) internal view returns (bool) {
        return governance.orgRoles(org) & Roles.ORG_REGULATOR != 0;
    }

    function _isTerminal(UnitState s) internal pure returns (bool) {
        return s >= UnitState.DISPENSED;
    }

    /// @dev Refusal for a unit that must still be in the chain (known and not terminal).
    function _liveRefusal(UnitState s) internal pure returns (Refusal) {
        if (s == UnitState.NONE) return Refusal.UNKNOWN_CODE;
        if (s == UnitState.DISPENSED) return Refusal.ALREADY_DISPENSED;
        if (_isTerminal(s)) return Refusal.TERMINAL;
        return Refusal.NONE;
    }

    function _notInTransit(UnitState s) internal pure returns (Refusal) {
        Refusal r = _liveRefusal(s);
        return r == Refusal.NONE ? Refusal.NOT_IN_TRANSIT : r;
    }

    /// @dev Refusal unless a (top-level) unit is in `org`'s hands: GENERATED or RECEIVED, held by `org`.
    function _custodyRefusal(Unit storage u, uint64 org) internal view returns (Refusal) {
        UnitState s = u.state;
        Refusal r = _liveRefusal(s);
        if (r != Refusal.NONE) return r;
        if (s == UnitState.AGGREGATED) return Refusal.PACKED_IN_PARENT;
        if (s != UnitState.GENERATED && s != UnitState.RECEIVED) return Refusal.IN_TRANSIT;
        if (u.holder != org) return Refusal.NOT_HOLDER;
        return Refusal.NONE;
    }

    /// @dev Like _custodyRefusal, but a packed unit is judged by its top-level parent.
    function _effectiveCustody(bytes32 code, Unit storage u, uint64 org) internal view returns (Refusal) {
        if (u.state != UnitState.AGGREGATED) return _custodyRefusal(u, org);
        return _custodyRefusal(_top(code), org);
    }

    /// @dev The unit governing `code`: itself unless packed; else the first ancestor that is not packed
    ///   (the top-level parent, or an ancestor in a terminal state, which freezes what it contains).
    function _top(bytes32 code) internal view returns (Unit storage u) {
        u = _units[code];
        while (u.state == UnitState.AGGREGATED) {
            u = _units[u.parent];
        }
    }

    /// @dev Moves a unit to a terminal state; a packed unit makes its ancestors count one removed unit.
    function _remove(Unit storage u, UnitState to) internal {
        bool packed = u.state == UnitState.AGGREGATED;
        u.state = to;
        if (packed) {
            _addRemoved(u.parent, 1, true);
        }
    }

    function _addRemoved(bytes32 ancestor, uint256 count, bool add) internal {
        while (ancestor != bytes32(0)) {
            Unit storage a = _units[ancestor];
            a.removedInside = add ? a.removedInside + uint24(count) : a.removedInside - uint24(count);
            ancestor = a.parent;
        }
    }
}
