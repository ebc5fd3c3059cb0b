// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IGovernance} from "../interfaces/IGovernance.sol";
import {Roles} from "../lib/Roles.sol";
import {GmCrypto} from "../lib/GmCrypto.sol";
import {Sm2Key} from "../lib/Sm2Key.sol";

/// @title PrescriptionBase — PrescriptionFlow's types, storage, events, views and the checks every transition
///   shares (the staff signature over the Context, the pickup proof, the terms rules). The state machine itself
///   is in PrescriptionFlow.sol, which documents both.
abstract contract PrescriptionBase {
    enum State {
        NONE,
        SIGNED,
        APPROVED,
        REJECTED,
        CIRCULATED,
        CLAIMED,
        DISPENSING,
        CHECKED,
        DISPENSED,
        DELIVERING,
        DELIVERED,
        REVOKED,
        EXPIRED
    }

    enum Transition {
        ISSUE,
        APPROVE,
        REJECT,
        REISSUE,
        CIRCULATE,
        CLAIM,
        RELEASE,
        DISPENSE,
        CHECK,
        HAND_OVER,
        PICK_UP,
        DELIVER,
        REVOKE,
        EXPIRE,
        EXTEND,
        CONSIGN,
        RECALL
    }

    /// @notice The acting staff member and their SM2 signature (r, s) over the transition message.
    struct StaffSignature {
        address staff;
        bytes32 r;
        bytes32 s;
    }

    /// @notice Terms the doctor sets at issue (national interface names in brackets).
    struct Terms {
        uint8 validDays; // [valid_days] 1 = the day of issue only; at most 3
        uint16 supplyDays; // [medc_days] longest supply among the drug lines
        uint8 flags; // FLAG_* bits
        uint8 longSupplyReason; // reason code for supply beyond the limit; 0 = none
        uint8 maxReptCnt; // [max_rept_cnt] total fills of a repeat prescription (>= 2); 0 or 1 otherwise
        uint32 minIntervalSeconds; // [min_inrv_days] in seconds, between the starts of two fills
    }

    /// @notice Everything a staff signature authorises besides the id, the transition and the document, as it
    ///   stands once the transition is applied.
    struct Context {
        uint16 version; // the prescription version
        uint16 nonce; // signed transitions before this one
        uint8 fill; // fills started so far (reptdCnt)
        uint64 deliveryOrg; // the logistics org the claiming pharmacy named for this fill; 0 when none
        Terms terms; // the prescription terms in force
        bytes32 pickupKey; // keccak256 of the pickup key (64 bytes x||y); 0 before circulation
    }

    /// @notice The pickup key's SM2 signature (r, s) over the pickup message of the claim.
    struct PickupProof {
        bytes32 r;
        bytes32 s;
    }

    struct Prescription {
        // slot 0
        uint64 hospitalOrg;
        uint64 pharmacyOrg; // the claiming pharmacy; 0 while unclaimed
        uint16 version;
        uint16 nonce; // signed transitions so far
        State state;
        uint8 flags;
        uint8 validDays;
        uint8 maxReptCnt;
        uint8 reptdCnt;
        uint8 longSupplyReason;
        uint16 supplyDays;
        uint32 minIntervalSeconds;
        // slot 1
        address doctor;
        uint40 validEnd; // first second at which the prescription is no longer valid
        uint40 lastFillAt;
        // slot 2
        address dispenser;
        uint64 deliveryOrg; // named by the claiming pharmacy (consign); only this org may pick up
        // slot 3
        bytes32 docCommitment; // commitment of the current prescription version
    }

    bytes32 public constant TRANSITION_TAG = keccak256("shancheng.rx.transition.v3");
    bytes32 public constant PICKUP_TAG = keccak256("shancheng.rx.pickup.v1");

    uint8 public constant FLAG_ONLINE = 1 << 0; // issued through the internet-diagnosis channel
    uint8 public constant FLAG_EMERGENCY = 1 << 1; // emergency prescription: supply at most 3 days
    uint8 public constant FLAG_CONTROLLED = 1 << 2; // contains narcotics or psychotropics
    uint8 public constant FLAG_REPEAT = 1 << 3; // [rept_flag]
    uint8 internal constant FLAGS_ALL = (1 << 4) - 1;

    uint8 public constant MAX_VALID_DAYS = 3;
    uint16 public constant MAX_SUPPLY_DAYS = 7;
    uint16 public constant MAX_EMERGENCY_SUPPLY_DAYS = 3;
    /// @dev Validity days end at midnight China Standard Time (UTC+8), the clock of the rules.
    int256 internal constant TZ_OFFSET = 8 hours;

    IGovernance public immutable governance;
    /// @notice True when the chain has the GM precompile (probed once at deployment): SM2 checked on chain.
    bool public immutable sm2OnChain;

    mapping(bytes32 rxId => Prescription) internal _rx;
    mapping(bytes32 rxId => bytes) internal _pickupKey;

    /// @notice Every transition. (r, s) and the fields here with the log's chain id and address rebuild M.
    event RxTransition(
        bytes32 indexed rxId,
        Transition indexed transition,
        uint64 indexed actingOrg,
        State from,
        State to,
        address staff,
        bytes32 docCommitment,
        Context signed,
        bytes32 r,
        bytes32 s,
        bool sm2Verified
    );

    /// @notice The terms of a prescription version (on issue and re-issue) and the validity it yields.
    event RxTerms(bytes32 indexed rxId, uint16 version, address doctor, uint40 validEnd, Terms terms);

    /// @notice A pharmacy claimed with the pickup key's signature (r, s) over pickupMessage; `pickupKey` is the
    ///   key it was checked against (on chain where `verified`, else off chain from this event).
    event RxClaimProof(
        bytes32 indexed rxId, uint64 indexed pharmacyOrg, uint16 nonce, bytes pickupKey, bytes32 r, bytes32 s, bool verified
    );

    /// @notice The validity end moved (extension by the prescribing doctor).
    event RxValidityExtended(bytes32 indexed rxId, uint8 validDays, uint40 validEnd);

    constructor(IGovernance governance_) {
        require(address(governance_) != address(0), "Rx: governance is zero");
        governance = governance_;
        sm2OnChain = GmCrypto.available();
    }

    // ------------------------------------------------------------------ views

    function getPrescription(bytes32 rxId) external view returns (Prescription memory) {
        return _rx[rxId];
    }

    function stateOf(bytes32 rxId) external view returns (State) {
        return _rx[rxId].state;
    }

    /// @notice The pickup key (64 bytes x||y) a claim must be signed with; empty before circulation.
    function pickupKeyOf(bytes32 rxId) external view returns (bytes memory) {
        return _pickupKey[rxId];
    }

    /// @notice The SM3 preimage of the pickup message the pickup key signs for `pharmacyOrg`'s claim now.
    function pickupPreimage(bytes32 rxId, uint64 pharmacyOrg) external view returns (bytes memory) {
        return abi.encode(PICKUP_TAG, block.chainid, address(this), rxId, pharmacyOrg, _rx[rxId].nonce);
    }

    /// @notice The Context a signature for the next transition covers when that transition changes none of
    ///   its fields (issue, re-issue, extend, dispense and consign change some: adjust them).
    function contextOf(bytes32 rxId) external view returns (Context memory) {
        return _context(rxId, _rx[rxId]);
    }

    /// @notice The message M the acting staff member signs for a transition (needs the GM precompile).
    function transitionMessage(bytes32 rxId, Transition transition, bytes32 docCommitment, Context calldata ctx)
        external
        view
        returns (bytes32)
    {
        return GmCrypto.sm3(_messagePreimage(rxId, transition, docCommitment, ctx));
    }

    /// @notice The SM3 preimage of M; works on every chain.
    function transitionPreimage(bytes32 rxId, Transition transition, bytes32 docCommitment, Context calldata ctx)
        external
        view
        returns (bytes memory)
    {
        return _messagePreimage(rxId, transition, docCommitment, ctx);
    }

    // ------------------------------------------------------------------ internals

    function _known(bytes32 rxId) internal view returns (Prescription storage rx) {
        rx = _rx[rxId];
        require(rx.state != State.NONE, "Rx: unknown prescription");
    }

    function _maxFills(Prescription storage rx) internal view returns (uint8) {
        return rx.flags & FLAG_REPEAT != 0 ? rx.maxReptCnt : 1;
    }

    /// @dev A completed fill of a repeat prescription that still has fills left is not terminal.
    function _fillsLeftAfterCycle(Prescription storage rx) internal view returns (bool) {
        State s = rx.state;
        return (s == State.DISPENSED || s == State.DELIVERED) && rx.reptdCnt < _maxFills(rx);
    }

    /// @dev States in which the prescription waits for its (next) fill; validity governs them.
    function _waitingForFill(Prescription storage rx) internal view returns (bool) {
        State s = rx.state;
        return s == State.SIGNED || s == State.REJECTED || s == State.APPROVED || s == State.CIRCULATED
            || s == State.CLAIMED || _fillsLeftAfterCycle(rx);
    }

    function _requireValid(Prescription storage rx) internal view {
        require(block.timestamp < rx.validEnd, "Rx: validity ended");
    }

    function _writeTerms(Prescription storage rx, bytes32 rxId, uint16 version, bytes32 doc, Terms calldata t)
        internal
    {
        require(doc != bytes32(0), "Rx: prescription commitment is zero");
        require(t.validDays >= 1 && t.validDays <= MAX_VALID_DAYS, "Rx: validity must be 1 to 3 days");
        require(t.flags & ~FLAGS_ALL == 0, "Rx: unknown flag");
        require(
            t.flags & (FLAG_ONLINE | FLAG_CONTROLLED) != (FLAG_ONLINE | FLAG_CONTROLLED),
            "Rx: narcotics and psychotropics cannot be prescribed online"
        );
        uint16 limit = t.flags & FLAG_EMERGENCY != 0 ? MAX_EMERGENCY_SUPPLY_DAYS : MAX_SUPPLY_DAYS;
        require(t.supplyDays >= 1, "Rx: supply days is zero");
        require(t.supplyDays <= limit || t.longSupplyReason != 0, "Rx: supply days over the limit without a reason");
        if (t.flags & FLAG_REPEAT != 0) {
            require(t.maxReptCnt >= 2, "Rx: repeat needs at least 2 fills");
        } else {
            require(t.maxReptCnt <= 1 && t.minIntervalSeconds == 0, "Rx: repeat terms without repeat flag");
        }
        // valid through the end of day (validDays - 1) after the day of issue, China Standard Time
        int256 local = int256(block.timestamp) + TZ_OFFSET;
        uint256 dayStart = uint256(local - (local % 1 days) - TZ_OFFSET);
        uint40 validEnd = uint40(dayStart + uint256(t.validDays) * 1 days);

        rx.version = version;
        rx.flags = t.flags;
        rx.validDays = t.validDays;
        rx.supplyDays = t.supplyDays;
        rx.longSupplyReason = t.longSupplyReason;
        rx.maxReptCnt = t.maxReptCnt;
        rx.minIntervalSeconds = t.minIntervalSeconds;
        rx.validEnd = validEnd;
        rx.docCommitment = doc;
        emit RxTerms(rxId, version, rx.doctor, validEnd, t);
    }

    /// @dev The acting organisation: msg.sender's org, active, holding one of `orgRoles`.
    function _actingOrg(uint256 orgRoles, string memory roleReason) internal view returns (uint64 org) {
        org = governance.orgOfAccount(msg.sender);
        require(org != 0, "Rx: sender is not a member account");
        require(governance.orgActive(org), "Rx: sender org is not active");
        require(governance.orgRoles(org) & orgRoles != 0, roleReason);
    }

    /// @dev Checks the staff member (active, of `org`, with one of `staffRoles`) and their signature over the
    ///   transition with the Context as it stands now (the caller has applied every change but the state),
    ///   advances the nonce, moves the prescription to `to` and emits the transition.
    function _signed(
        bytes32 rxId,
        Prescription storage rx,
        uint64 org,
        Transition t,
        State to,
        bytes32 doc,
        uint256 staffRoles,
        StaffSignature calldata sig
    ) internal {
        Context memory ctx = _context(rxId, rx);
        bool verified = _checkStaff(_messagePreimage(rxId, t, doc, ctx), org, staffRoles, sig);
        State from = rx.state;
        rx.state = to;
        rx.nonce = ctx.nonce + 1;
        emit RxTransition(rxId, t, org, from, to, sig.staff, doc, ctx, sig.r, sig.s, verified);
    }

    function _context(bytes32 rxId, Prescription storage rx) internal view returns (Context memory) {
        bytes storage pickupKey = _pickupKey[rxId];
        return Context({
            version: rx.version,
            nonce: rx.nonce,
            fill: rx.reptdCnt,
            deliveryOrg: rx.deliveryOrg,
            terms: Terms({
                validDays: rx.validDays,
                supplyDays: rx.supplyDays,
                flags: rx.flags,
                longSupplyReason: rx.longSupplyReason,
                maxReptCnt: rx.maxReptCnt,
                minIntervalSeconds: rx.minIntervalSeconds
            }),
            pickupKey: pickupKey.length == 0 ? bytes32(0) : keccak256(pickupKey)
        });
    }

    /// @dev Stores a pickup key: a point on the SM2 curve, 64 bytes x||y.
    function _setPickupKey(bytes32 rxId, bytes calldata pickupKey) internal {
        require(Sm2Key.isValid(pickupKey), "Rx: bad pickup key");
        _pickupKey[rxId] = pickupKey;
    }

    /// @dev Reverts unless (r, s) is the pickup key's signature over the pickup message for `org` (checked on
    ///   chain with the GM precompile; recorded in RxClaimProof either way).
    function _checkPickup(bytes32 rxId, Prescription storage rx, uint64 org, PickupProof calldata pickup) internal {
        bytes memory key = _pickupKey[rxId];
        require(pickup.r != bytes32(0) && pickup.s != bytes32(0), "Rx: missing pickup proof");
        bool verified = false;
        if (sm2OnChain) {
            bytes32 message =
                GmCrypto.sm3(abi.encode(PICKUP_TAG, block.chainid, address(this), rxId, org, rx.nonce));
            (bool ok,) = GmCrypto.sm2Verify(message, key, pickup.r, pickup.s);
            require(ok, "Rx: wrong pickup code");
            verified = true;
        }
        emit RxClaimProof(rxId, org, rx.nonce, key, pickup.r, pickup.s, verified);
    }

    /// @dev Reverts unless `sig.staff` is an active staff member of `org` with one of `staffRoles` and, when
    ///   the chain has the GM precompile, (r, s) is their valid SM2 signature of SM3(preimage). True when
    ///   checked on chain.
    function _checkStaff(bytes memory preimage, uint64 org, uint256 staffRoles, StaffSignature calldata sig)
        internal
        view
        returns (bool)
    {
        bytes memory publicKey = _staffKey(org, staffRoles, sig.staff);
        if (!sm2OnChain) {
            return false;
        }
        (bool ok, address signer) = GmCrypto.sm2Verify(GmCrypto.sm3(preimage), publicKey, sig.r, sig.s);
        require(ok && signer == sig.staff, "Rx: bad staff signature");
        return true;
    }

    function _staffKey(uint64 org, uint256 staffRoles, address staff) internal view returns (bytes memory) {
        (uint64 staffOrg, uint256 roles, bool active, bytes memory publicKey) = governance.staffInfo(staff);
        require(staffOrg != 0, "Rx: unknown staff");
        require(staffOrg == org, "Rx: staff not of the acting org");
        require(active, "Rx: staff not active");
        require(roles & staffRoles != 0, "Rx: staff lacks the role");
        return publicKey;
    }

    function _messagePreimage(bytes32 rxId, Transition t, bytes32 doc, Context memory ctx)
        internal
        view
        returns (bytes memory)
    {
        return abi.encode(TRANSITION_TAG, block.chainid, address(this), rxId, uint8(t), doc, ctx);
    }
}
