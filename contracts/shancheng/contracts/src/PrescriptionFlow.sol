// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IGovernance} from "./interfaces/IGovernance.sol";
import {Roles} from "./lib/Roles.sol";
import {PrescriptionBase} from "./prescriptions/PrescriptionBase.sol";

/// @title PrescriptionFlow — e-prescription circulation (电子处方流转) enforced on chain.
/// @notice Only commitments go on chain: `rxId` is an opaque id in the issuing hospital's namespace (its first
///   8 bytes are the hospital's organisation id, big-endian; the SDK draws the other 24 at random) and every
///   `docCommitment` is the commitment of the off-chain record of that step (prescription, review opinion,
///   dispensing record, delivery note). Patient data never appears here.
///
///   The patient's choice binds the claim: circulating sets a pickup key, the SM2 public key derived from a
///   pickup code the hospital gives the patient (80 random bits, never on chain). Only a pharmacy the patient
///   gave the code to can claim: its claim carries the pickup key's SM2 signature over
///     P = SM3(abi.encode(PICKUP_TAG, block.chainid, address(this), rxId, uint64 pharmacyOrg, uint16 nonce))
///   which names the claiming pharmacy and the prescription's nonce, so it cannot be replayed or front-run by
///   another pharmacy. The issuing hospital may recall a claim no fill has started (or a circulating
///   prescription whose code leaked) with a new pickup key.
///
///   State machine (domain/prescriptions.md):
///     (none)      -> SIGNED      issue       doctor of a hospital
///     SIGNED      -> APPROVED    approve     pharmacist of the issuing hospital or of a pharmacy
///     SIGNED      -> REJECTED    reject      same
///     REJECTED    -> SIGNED      reissue     the prescribing doctor; version + 1
///     APPROVED    -> CIRCULATED  circulate   the issuing hospital (doctor, pharmacist or operator); sets the pickup key
///     CIRCULATED  -> CLAIMED     claim       a pharmacy holding the pickup code (pharmacist or operator); locks it
///     CLAIMED     -> CIRCULATED  release     the claiming pharmacy
///     CIRCULATED, CLAIMED -> CIRCULATED recall the issuing hospital, with a new pickup key (no fill under way)
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
///                        Context(version, nonce, fill, deliveryOrg, terms, pickupKey)))
///   where the Context is what the transition authorises, as it stands once the transition is applied: the
///   prescription version, the nonce (signed transitions before this one: every signed transition advances
///   it, so no signature is accepted twice), the fill number (fills started so far: a dispense signs the fill
///   it starts), the logistics org the pharmacy named (0 when none), every prescription term (an issue or
///   re-issue signs the terms it sets, an extension the new validity) and the keccak256 of the pickup key (0
///   before circulation; a circulate or recall signs the key it sets). With the GM precompile the signature
///   is checked here; on a stock EVM it is only recorded, with the Context, in the RxTransition event for
///   off-chain verification.
contract PrescriptionFlow is PrescriptionBase {
    constructor(IGovernance governance_) PrescriptionBase(governance_) {}

    // ------------------------------------------------------------------ doctor

    /// @notice A doctor of a hospital issues (signs) a new prescription: (none) -> SIGNED, version 1.
    function issue(bytes32 rxId, bytes32 docCommitment, Terms calldata terms, StaffSignature calldata sig) external {
        Prescription storage rx = _rx[rxId];
        require(rxId != bytes32(0), "Rx: id is zero");
        require(rx.state == State.NONE, "Rx: already exists");
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL, "Rx: org is not a hospital");
        require(uint64(uint256(rxId) >> 192) == org, "Rx: id not in the hospital's namespace");
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

    /// @notice The issuing hospital releases an approved prescription for circulation with the pickup key of
    ///   the patient's pickup code: APPROVED -> CIRCULATED.
    function circulate(bytes32 rxId, bytes32 docCommitment, bytes calldata pickupKey, StaffSignature calldata sig)
        external
    {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.APPROVED, "Rx: not approved");
        _requireValid(rx);
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL, "Rx: org is not a hospital");
        require(org == rx.hospitalOrg, "Rx: not the issuing hospital");
        _setPickupKey(rxId, pickupKey);
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

    /// @notice The pharmacy the patient chose (gave the pickup code to) claims it: CIRCULATED -> CLAIMED, locked
    ///   to that pharmacy. `pickup` is the pickup key's signature over pickupPreimage(rxId, this pharmacy).
    function claim(bytes32 rxId, bytes32 docCommitment, PickupProof calldata pickup, StaffSignature calldata sig)
        external
    {
        Prescription storage rx = _known(rxId);
        require(rx.state == State.CIRCULATED, "Rx: not circulating");
        _requireValid(rx);
        uint64 org = _actingOrg(Roles.ORG_PHARMACY, "Rx: org is not a pharmacy");
        _checkPickup(rxId, rx, org, pickup);
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

    /// @notice The issuing hospital recalls a circulating prescription, or a claim no fill is under way for,
    ///   with a new pickup key (the old code stops working): CIRCULATED, CLAIMED -> CIRCULATED; a repeat
    ///   prescription with fills left also from DISPENSED / DELIVERED.
    function recall(bytes32 rxId, bytes32 docCommitment, bytes calldata pickupKey, StaffSignature calldata sig)
        external
    {
        Prescription storage rx = _known(rxId);
        require(
            rx.state == State.CIRCULATED || rx.state == State.CLAIMED || _fillsLeftAfterCycle(rx),
            "Rx: cannot recall in this state"
        );
        _requireValid(rx);
        uint64 org = _actingOrg(Roles.ORG_HOSPITAL, "Rx: org is not a hospital");
        require(org == rx.hospitalOrg, "Rx: not the issuing hospital");
        require(keccak256(pickupKey) != keccak256(_pickupKey[rxId]), "Rx: new pickup key is the current key");
        _setPickupKey(rxId, pickupKey);
        rx.pharmacyOrg = 0;
        _signed(
            rxId,
            rx,
            org,
            Transition.RECALL,
            State.CIRCULATED,
            docCommitment,
            Roles.STAFF_DOCTOR | Roles.STAFF_PHARMACIST | Roles.STAFF_OPERATOR,
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
            _context(rxId, rx),
            bytes32(0),
            bytes32(0),
            false
        );
    }
}
