// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IGovernance} from "./interfaces/IGovernance.sol";
import {Roles} from "./lib/Roles.sol";
import {GmCrypto} from "./lib/GmCrypto.sol";

/// @title PrescriptionFlow — e-prescription circulation (电子处方流转) enforced on chain.
/// @notice Only commitments go on chain: `rxId` is an opaque id (e.g. a salted SM3 of hosp_rxno) and every
///   `docCommitment` is the commitment of the off-chain record of that step (prescription, review opinion,
///   dispensing record, delivery note). Patient data never appears here.
///
///   State machine (domain/prescriptions.md):
///     (none)      -> SIGNED      issue       doctor of a hospital
///     SIGNED      -> APPROVED    approve     pharmacist of the issuing hospital or of a pharmacy
///     SIGNED      -> REJECTED    reject      same
///     REJECTED    -> SIGNED      reissue     the prescribing doctor; version + 1
///     APPROVED    -> CIRCULATED  circulate   the issuing hospital (doctor, pharmacist or operator)
///     CIRCULATED  -> CLAIMED     claim       a pharmacy (pharmacist or operator); locks it to that pharmacy
///     CLAIMED     -> CIRCULATED  release     the claiming pharmacy
///     CLAIMED     -> DISPENSING  dispense    dispenser/pharmacist of the claiming pharmacy (uses one fill)
///     DISPENSING  -> CHECKED     check       checker/pharmacist of the claiming pharmacy, not the dispenser
///     CHECKED     -> DISPENSED   handOver    the claiming pharmacy
///     CHECKED     -> CHECKED     consign     the claiming pharmacy names the logistics org that delivers
///     CHECKED     -> DELIVERING  pickUp      courier of the named logistics org, only
///     DELIVERING  -> DELIVERED   deliver     courier of that logistics org
///     SIGNED, REJECTED, APPROVED, CIRCULATED, CLAIMED -> REVOKED   revoke   the prescribing doctor
///     waiting states -> EXPIRED  expire      anyone, once block.timestamp >= validEnd
///   A repeat prescription (FLAG_REPEAT, maxReptCnt fills, minimum interval) starts a new dispensing cycle
///   from DISPENSED or DELIVERED (dispense again, or release to let another pharmacy claim it) while
///   reptdCnt < maxReptCnt; DISPENSED and DELIVERED are terminal once every fill is used.
///
///   Every step except `expire` names the acting staff member (their SM2 address) and carries their SM2
///   signature (r, s), default user ID, over
///     M = SM3(abi.encode(TRANSITION_TAG, block.chainid, address(this), rxId, uint8(transition), docCommitment,
///                        Context(version, nonce, fill, deliveryOrg, terms)))
///   where the Context is what the transition authorises, as it stands once the transition is applied: the
///   prescription version, the nonce (signed transitions before this one: every signed transition advances
///   it, so no signature is accepted twice), the fill number (fills started so far: a dispense signs the fill
///   it starts), the logistics org the pharmacy named (0 when none) and every prescription term (an issue or
///   re-issue signs the terms it sets, an extension the new validity). With the GM precompile the signature
///   is checked here; on a stock EVM it is only recorded, with the Context, in the RxTransition event for
///   off-chain verification.
contract PrescriptionFlow {
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
        CONSIGN
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

    bytes32 public constant TRANSITION_TAG = keccak256("shancheng.rx.transition.v2");

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

    /// @notice The Context a signature for the next transition covers when that transition changes none of
    ///   its fields (issue, re-issue, extend, dispense and consign change some: adjust them).
    function contextOf(bytes32 rxId) external view returns (Context memory) {
        return _context(_rx[rxId]);
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

    // ------------------------------------------------------------------ doctor

    /// @notice A doctor of a hospital issues (signs) a new prescription: (none) -> SIGNED, version 1.
    function issue(bytes32 rxId, bytes32 docCommitment, Terms calldata terms, StaffSignature calldata sig) external {
        Prescription storage rx = _rx[rxId];
        require(rxId != bytes32(0), "Rx: id is zero");
        require(rx.state == State.NONE, "Rx: already exists");
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL, "Rx: org is not a hospital");
        rx.hospitalOrg = org;
        rx.doctor = sig.staff;
        _writeTerms(rx, rxId, 1, docCommitment, terms);
        _signed(rxId, rx, org, Transition.ISSUE, State.SIGNED, docCommitment, Roles.STAFF_DOCTOR, sig);
    }

    /// @notice The prescribing doctor re-issues a rejected prescription as a new version: REJECTED -> SIGNED.
    function reissue(bytes32 rxId, bytes32 docCommitment, Terms calldata terms, StaffSignature calldata sig)
        external
    {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.REJECTED, "Rx: not rejected");
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL, "Rx: org is not a hospital");
        require(org == rx.hospitalOrg, "Rx: not the issuing hospital");
        require(sig.staff == rx.doctor, "Rx: only the prescribing doctor");
        _writeTerms(rx, rxId, rx.version + 1, docCommitment, terms);
        _signed(rxId, rx, org, Transition.REISSUE, State.SIGNED, docCommitment, Roles.STAFF_DOCTOR, sig);
    }

    /// @notice The prescribing doctor extends validity to `validDays` (more than now, at most 3); the signature
    ///   covers the new `validDays` and the nonce, so it extends once.
    function extendValidity(bytes32 rxId, uint8 validDays, bytes32 docCommitment, StaffSignature calldata sig)
        external
    {
        Prescription storage rx = _known(rxId);
        require(_waitingForFill(rx), "Rx: cannot extend in this state");
        _requireValid(rx);
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL, "Rx: org is not a hospital");
        require(org == rx.hospitalOrg, "Rx: not the issuing hospital");
        require(sig.staff == rx.doctor, "Rx: only the prescribing doctor");
        require(validDays > rx.validDays, "Rx: validity can only be extended");
        require(validDays <= MAX_VALID_DAYS, "Rx: validity longer than 3 days");
        rx.validEnd += uint40(validDays - rx.validDays) * 1 days;
        rx.validDays = validDays;
        _signed(rxId, rx, org, Transition.EXTEND, rx.state, docCommitment, Roles.STAFF_DOCTOR, sig);
        emit RxValidityExtended(rxId, validDays, rx.validEnd);
    }

    /// @notice The prescribing doctor revokes before any dispensing.
    function revoke(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        State s = rx.state;
        require(
            (s == State.SIGNED || s == State.REJECTED || s == State.APPROVED || s == State.CIRCULATED
                    || s == State.CLAIMED) && rx.reptdCnt == 0,
            "Rx: cannot revoke after dispensing"
        );
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL, "Rx: org is not a hospital");
        require(org == rx.hospitalOrg, "Rx: not the issuing hospital");
        require(sig.staff == rx.doctor, "Rx: only the prescribing doctor");
        _signed(rxId, rx, org, Transition.REVOKE, State.REVOKED, docCommitment, Roles.STAFF_DOCTOR, sig);
    }

    // ------------------------------------------------------------------ review

    /// @notice A pharmacist approves the signed prescription: SIGNED -> APPROVED.
    function approve(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        _review(rxId, docCommitment, sig, Transition.APPROVE, State.APPROVED);
    }

    /// @notice A pharmacist rejects it back to the doctor: SIGNED -> REJECTED.
    function reject(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        _review(rxId, docCommitment, sig, Transition.REJECT, State.REJECTED);
    }

    function _review(bytes32 rxId, bytes32 doc, StaffSignature calldata sig, Transition t, State to) internal {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.SIGNED, "Rx: not awaiting review");
        _requireValid(rx);
        require(doc != bytes32(0), "Rx: review commitment is zero");
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL | Roles.ORG_PHARMACY, "Rx: org is not a hospital or pharmacy");
        // a hospital reviews only its own prescriptions; a pharmacy (e.g. a review centre) may review any
        require(
            org == rx.hospitalOrg || governance.orgRoles(org) & Roles.ORG_PHARMACY != 0,
            "Rx: another hospital cannot review"
        );
        _signed(rxId, rx, org, t, to, doc, Roles.STAFF_PHARMACIST, sig);
    }

    // ------------------------------------------------------------------ circulation

    /// @notice The issuing hospital releases an approved prescription for circulation: APPROVED -> CIRCULATED.
    function circulate(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.APPROVED, "Rx: not approved");
        _requireValid(rx);
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL, "Rx: org is not a hospital");
        require(org == rx.hospitalOrg, "Rx: not the issuing hospital");
        _signed(
            rxId,
            rx,
            org,
            Transition.CIRCULATE,
            State.CIRCULATED,
            docCommitment,
            Roles.STAFF_DOCTOR | Roles.STAFF_PHARMACIST | Roles.STAFF_OPERATOR,
            sig
        );
    }

    /// @notice The pharmacy the patient chose claims it: CIRCULATED -> CLAIMED, locked to that pharmacy.
    function claim(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.CIRCULATED, "Rx: not circulating");
        _requireValid(rx);
        uint64 org = _actingOrg(Roles.ORG_PHARMACY, "Rx: org is not a pharmacy");
        rx.pharmacyOrg = org;
        _signed(
            rxId,
            rx,
            org,
            Transition.CLAIM,
            State.CLAIMED,
            docCommitment,
            Roles.STAFF_PHARMACIST | Roles.STAFF_OPERATOR,
            sig
        );
    }

    /// @notice The claiming pharmacy gives it back to circulation: CLAIMED -> CIRCULATED. A repeat
    ///   prescription with fills left may also be released from DISPENSED / DELIVERED.
    function release(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.CLAIMED || _fillsLeftAfterCycle(rx), "Rx: not claimed");
        _requireValid(rx);
        uint64 org = _actingOrg(Roles.ORG_PHARMACY, "Rx: org is not a pharmacy");
        require(org == rx.pharmacyOrg, "Rx: not the claiming pharmacy");
        rx.pharmacyOrg = 0;
        _signed(
            rxId,
            rx,
            org,
            Transition.RELEASE,
            State.CIRCULATED,
            docCommitment,
            Roles.STAFF_PHARMACIST | Roles.STAFF_OPERATOR,
            sig
        );
    }

    // ------------------------------------------------------------------ dispensing

    /// @notice The claiming pharmacy starts a fill (调配): CLAIMED -> DISPENSING; for a repeat prescription
    ///   also DISPENSED / DELIVERED -> DISPENSING while fills are left and the minimum interval has passed.
    function dispense(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        State s = rx.state;
        if (s == State.DISPENSED || s == State.DELIVERED) {
            require(rx.reptdCnt < _maxFills(rx), "Rx: already dispensed");
        } else {
            require(s == State.CLAIMED, "Rx: not claimed");
        }
        _requireValid(rx);
        uint64 org = _actingOrg(Roles.ORG_PHARMACY, "Rx: org is not a pharmacy");
        require(org == rx.pharmacyOrg, "Rx: not the claiming pharmacy");
        if (rx.reptdCnt > 0) {
            require(block.timestamp >= uint256(rx.lastFillAt) + rx.minIntervalSeconds, "Rx: repeat interval not reached");
        }
        rx.reptdCnt += 1;
        rx.lastFillAt = uint40(block.timestamp);
        rx.dispenser = sig.staff;
        rx.deliveryOrg = 0;
        _signed(
            rxId,
            rx,
            org,
            Transition.DISPENSE,
            State.DISPENSING,
            docCommitment,
            Roles.STAFF_DISPENSER | Roles.STAFF_PHARMACIST,
            sig
        );
    }

    /// @notice Checking (核对) by a different person than the dispenser: DISPENSING -> CHECKED.
    function check(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.DISPENSING, "Rx: not dispensing");
        uint64 org = _actingOrg(Roles.ORG_PHARMACY, "Rx: org is not a pharmacy");
        require(org == rx.pharmacyOrg, "Rx: not the claiming pharmacy");
        require(sig.staff != rx.dispenser, "Rx: checker must differ from dispenser");
        _signed(
            rxId,
            rx,
            org,
            Transition.CHECK,
            State.CHECKED,
            docCommitment,
            Roles.STAFF_CHECKER | Roles.STAFF_PHARMACIST,
            sig
        );
    }

    /// @notice The pharmacy hands the checked drugs to the patient: CHECKED -> DISPENSED.
    function handOver(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.CHECKED, "Rx: not checked");
        uint64 org = _actingOrg(Roles.ORG_PHARMACY, "Rx: org is not a pharmacy");
        require(org == rx.pharmacyOrg, "Rx: not the claiming pharmacy");
        _signed(
            rxId,
            rx,
            org,
            Transition.HAND_OVER,
            State.DISPENSED,
            docCommitment,
            Roles.STAFF_PHARMACIST | Roles.STAFF_DISPENSER | Roles.STAFF_CHECKER,
            sig
        );
    }

    /// @notice The claiming pharmacy names the logistics organisation that delivers this fill: CHECKED ->
    ///   CHECKED. Its staff signature covers the named org; naming again replaces it until the pick-up.
    function consign(bytes32 rxId, uint64 logisticsOrg, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.CHECKED, "Rx: not checked");
        uint64 org = _actingOrg(Roles.ORG_PHARMACY, "Rx: org is not a pharmacy");
        require(org == rx.pharmacyOrg, "Rx: not the claiming pharmacy");
        require(
            governance.orgActive(logisticsOrg) && governance.orgRoles(logisticsOrg) & Roles.ORG_LOGISTICS != 0,
            "Rx: not an active logistics org"
        );
        rx.deliveryOrg = logisticsOrg;
        _signed(
            rxId,
            rx,
            org,
            Transition.CONSIGN,
            State.CHECKED,
            docCommitment,
            Roles.STAFF_PHARMACIST | Roles.STAFF_DISPENSER | Roles.STAFF_CHECKER | Roles.STAFF_OPERATOR,
            sig
        );
    }

    /// @notice A courier of the logistics organisation the pharmacy named picks up the checked drugs:
    ///   CHECKED -> DELIVERING.
    function pickUp(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.CHECKED, "Rx: not checked");
        uint64 org = _actingOrg(Roles.ORG_LOGISTICS, "Rx: org is not a logistics provider");
        require(rx.deliveryOrg != 0, "Rx: no logistics org named");
        require(org == rx.deliveryOrg, "Rx: not the named logistics org");
        _signed(rxId, rx, org, Transition.PICK_UP, State.DELIVERING, docCommitment, Roles.STAFF_COURIER, sig);
    }

    /// @notice The same logistics organisation delivers to the patient: DELIVERING -> DELIVERED.
    function deliver(bytes32 rxId, bytes32 docCommitment, StaffSignature calldata sig) external {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.DELIVERING, "Rx: not delivering");
        uint64 org = _actingOrg(Roles.ORG_LOGISTICS, "Rx: org is not a logistics provider");
        require(org == rx.deliveryOrg, "Rx: not the delivering org");
        _signed(rxId, rx, org, Transition.DELIVER, State.DELIVERED, docCommitment, Roles.STAFF_COURIER, sig);
    }

    // ------------------------------------------------------------------ expiry

    /// @notice Anyone may expire a prescription that waits for a fill once its validity has ended.
    ///   A fill already under way (DISPENSING, CHECKED, DELIVERING) completes; it cannot be expired.
    function expire(bytes32 rxId) external {
        Prescription storage rx = _known(rxId);
        require(_waitingForFill(rx), "Rx: cannot expire in this state");
        require(block.timestamp >= rx.validEnd, "Rx: still valid");
        State from = rx.state;
        rx.state = State.EXPIRED;
        emit RxTransition(
            rxId,
            Transition.EXPIRE,
            governance.orgOfAccount(msg.sender),
            from,
            State.EXPIRED,
            address(0),
            bytes32(0),
            _context(rx),
            bytes32(0),
            bytes32(0),
            false
        );
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
        Context memory ctx = _context(rx);
        bool verified = _checkStaff(_messagePreimage(rxId, t, doc, ctx), org, staffRoles, sig);
        State from = rx.state;
        rx.state = to;
        rx.nonce = ctx.nonce + 1;
        emit RxTransition(rxId, t, org, from, to, sig.staff, doc, ctx, sig.r, sig.s, verified);
    }

    function _context(Prescription storage rx) internal view returns (Context memory) {
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
            })
        });
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
