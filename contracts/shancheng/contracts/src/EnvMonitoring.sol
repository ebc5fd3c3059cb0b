// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

import {IGovernance} from "./interfaces/IGovernance.sol";
import {Roles} from "./lib/Roles.sol";
import {GmCrypto} from "./lib/GmCrypto.sol";
import {Sm2Key} from "./lib/Sm2Key.sol";

/// @title EnvMonitoring — HJ 212 station registry and hourly, SM2-signed batch anchors with gap and
///   exceedance detection (domain/env-monitoring.md).
/// @notice A station is keyed by its operator organisation and its HJ 212 MN (up to 24 ASCII letters/digits,
///   left-aligned in a bytes24, zero-padded): MNs live in each operator's namespace, so no member can take an
///   MN another operator uses or will use. Its operator organisation (role ORG_MONITORING_OPERATOR) or a
///   regulator registers and deactivates it. Registration carries the station key's proof of possession, an
///   SM2 signature by the station key over
///     M = SM3(abi.encode(STATION_POP_TAG, block.chainid, address(this), operatorOrg, mn, publicKey)).
///   Every hour the operator's gateway anchors the Merkle root of the hour's readings with a summary per
///   pollutant; the station's SM2 key signs
///     M = SM3(abi.encode(ANCHOR_TAG, block.chainid, address(this), operatorOrg, mn, batch))
///   with the default user ID. Where the GM precompile exists the contract checks these signatures; on a stock
///   EVM it records (r, s) in the events for off-chain verification.
///   Rotation rule: a station key changes only with both keys' consent or a regulator's. Both sign
///     M = SM3(abi.encode(KEY_ROTATION_TAG, block.chainid, address(this), operatorOrg, mn, oldKey, newKey));
///   the operator rotates with the old key's and the new key's signatures (rotateStationKey); when the old
///   key is lost or compromised a regulator replaces it with the new key's signature alone
///   (replaceStationKey). From then on only the new key signs anchors, so an operator alone cannot swap
///   the device key that vouches for the readings.
///   Hours (unix time / 3600) must strictly increase from the station's registration hour; every skipped
///   hour is reported by a Gap event and counted. A pollutant whose IAQI (HJ 633, computed off chain) passes
///   100 is reported by an Exceedance event.
///   Scaled integers: min/max/avg are the HJ 212 value (unit of the code: µg/m³, mg/m³ for CO, dB(A), ...)
///   multiplied by 1000.
contract EnvMonitoring {
    bytes32 public constant ANCHOR_TAG = keccak256("shancheng.env.HourlyBatch.v2");
    bytes32 public constant KEY_ROTATION_TAG = keccak256("shancheng.env.station-key-rotation.v2");
    bytes32 public constant STATION_POP_TAG = keccak256("shancheng.env.station-key-possession.v1");
    uint64 internal constant HOUR = 3600;
    uint256 public constant MAX_POLLUTANTS = 32;
    /// @notice IAQI tables: 1 = HJ 633-2012, 2 = HJ 633-2026 (new PM2.5/PM10 breakpoints)
    uint8 public constant IAQI_HJ633_2012 = 1;
    uint8 public constant IAQI_HJ633_2026 = 2;

    struct StationSpec {
        bytes24 mn; // HJ 212 MN, ASCII letters/digits, zero-padded on the right
        uint8 stType; // HJ 212 ST: 21 water, 22 air, 23 acoustic, 31 air source, 32 water source
        int32 latE6; // latitude in microdegrees (WGS-84)
        int32 lonE6; // longitude in microdegrees
        bytes12 geohash; // ASCII geohash, zero-padded (may be empty)
        uint32 areaCode; // GB/T 2260 administrative division code (may be 0)
        uint64 operatorOrg;
        bytes publicKey; // station SM2 key, 64 bytes x||y (65 with 04 accepted)
    }

    struct Station {
        uint64 operatorOrg;
        uint8 stType;
        bool active;
        int32 latE6;
        int32 lonE6;
        uint32 areaCode;
        uint64 registeredAt;
        bytes12 geohash;
        uint64 firstHour; // registration hour: gaps are counted from here
        uint64 nextHour; // first hour not yet accounted for (anchored or counted missing)
        uint64 anchorCount;
        uint64 missingHours;
        uint64 exceedances;
        uint64 deactivatedAt;
        bytes publicKey; // 64 bytes x||y
    }

    struct PollutantSummary {
        bytes8 code; // HJ 212 pollutant code, ASCII zero-padded (e.g. "a34004")
        int64 min; // value x 1000
        int64 max;
        int64 avg;
        uint16 iaqi; // the hour's IAQI for this pollutant (0 when it has no IAQI, e.g. temperature)
    }

    struct HourlyBatch {
        uint64 hour; // unix hour index (seconds / 3600)
        bytes32 merkleRoot; // RFC 9162 SM3 root over the hour's readings
        uint32 readingCount;
        uint64 firstReadingAt; // unix seconds, inside the hour
        uint64 lastReadingAt;
        uint8 iaqiTable; // IAQI_HJ633_2012 or IAQI_HJ633_2026
        PollutantSummary[] pollutants; // strictly increasing codes
    }

    /// @notice A station's place in the registry: its operator's namespace and its MN there.
    struct StationRef {
        uint64 operatorOrg;
        bytes24 mn;
    }

    /// @notice An SM2 signature (r, s) by a station key.
    struct KeySignature {
        bytes32 r;
        bytes32 s;
    }

    struct HourAnchor {
        bytes32 merkleRoot;
        uint32 readingCount;
        uint64 firstReadingAt;
        uint64 lastReadingAt;
        uint16 aqi; // max IAQI over the pollutants
        uint64 anchoredAt; // block time
    }

    IGovernance public immutable governance;
    /// @notice true when the GM precompile was found at deployment: SM2 signatures are checked on chain
    bool public immutable gmOnChain;

    mapping(uint64 operatorOrg => mapping(bytes24 mn => Station)) internal _stations;
    mapping(uint64 operatorOrg => mapping(bytes24 mn => mapping(uint64 hour => HourAnchor))) internal _anchors;
    StationRef[] internal _stationIds;

    event StationRegistered(
        bytes24 indexed mn,
        uint64 indexed operatorOrg,
        uint8 stType,
        int32 latE6,
        int32 lonE6,
        bytes12 geohash,
        uint32 areaCode,
        bytes publicKey,
        uint64 firstHour,
        uint64 byOrg
    );
    /// @notice The registered key's proof of possession (r, s) over stationPopPreimage; checked on chain where
    ///   `verified`, else to be checked off chain from this event and StationRegistered.
    event StationKeyProven(bytes24 indexed mn, uint64 indexed operatorOrg, bytes32 r, bytes32 s, bool verified);
    event StationDeactivated(bytes24 indexed mn, uint64 indexed operatorOrg, uint64 byOrg, uint64 at);
    /// @notice The station key changed. `newKeySig` is the new key's signature over keyRotationPreimage;
    ///   `oldKeySig` the old key's (zero when a regulator replaced a lost key); `byOrg` who sent it.
    event StationKeyRotated(
        bytes24 indexed mn,
        uint64 indexed operatorOrg,
        uint64 byOrg,
        bytes oldPublicKey,
        bytes newPublicKey,
        KeySignature newKeySig,
        KeySignature oldKeySig,
        bool verified
    );
    /// @notice `batch` is the anchored input as signed; `aqi` the max IAQI over its pollutants
    event HourAnchored(
        bytes24 indexed mn,
        uint64 indexed hour,
        uint64 indexed operatorOrg,
        HourlyBatch batch,
        uint16 aqi,
        bytes32 r,
        bytes32 s,
        bool signatureVerified
    );
    /// @notice hours fromHour..toHour (inclusive) of station `mn` were never anchored
    event Gap(bytes24 indexed mn, uint64 indexed operatorOrg, uint64 fromHour, uint64 toHour);
    /// @notice pollutant `code` of station `mn` passed IAQI 100 in `hour`
    event Exceedance(
        bytes24 indexed mn, uint64 indexed hour, bytes8 indexed code, uint64 operatorOrg, uint16 iaqi, int64 max
    );

    constructor(IGovernance governance_) {
        require(address(governance_) != address(0), "Env: governance is zero");
        governance = governance_;
        gmOnChain = GmCrypto.available();
    }

    // ------------------------------------------------------------------ registry

    /// @notice Registers a station in its operator's namespace. Caller: an account of the operator org, or of a
    ///   regulator. `pop` is the station key's signature over stationPopPreimage(spec) (proof of possession).
    function registerStation(StationSpec calldata spec, KeySignature calldata pop) external {
        uint64 callerOrg = _callerOrg();
        if (callerOrg != spec.operatorOrg) {
            require(_hasRole(callerOrg, Roles.ORG_REGULATOR), "Env: caller may not register for this operator");
        }
        require(governance.orgActive(spec.operatorOrg), "Env: operator org inactive");
        require(_hasRole(spec.operatorOrg, Roles.ORG_MONITORING_OPERATOR), "Env: operator org lacks monitoring role");
        require(_validMn(spec.mn), "Env: malformed MN");
        Station storage st = _stations[spec.operatorOrg][spec.mn];
        require(st.registeredAt == 0, "Env: station already registered");
        require(_validStType(spec.stType), "Env: unknown station type");
        require(
            spec.latE6 >= -90_000_000 && spec.latE6 <= 90_000_000 && spec.lonE6 >= -180_000_000
                && spec.lonE6 <= 180_000_000,
            "Env: location out of range"
        );
        bytes memory key = _normaliseKey(spec.publicKey);
        bool verified = _checkKeySignature(
            abi.encode(STATION_POP_TAG, block.chainid, address(this), spec.operatorOrg, spec.mn, key),
            key,
            pop,
            "Env: invalid station key proof of possession"
        );

        uint64 hourNow = uint64(block.timestamp / HOUR);
        st.operatorOrg = spec.operatorOrg;
        st.stType = spec.stType;
        st.active = true;
        st.latE6 = spec.latE6;
        st.lonE6 = spec.lonE6;
        st.areaCode = spec.areaCode;
        st.registeredAt = uint64(block.timestamp);
        st.geohash = spec.geohash;
        st.firstHour = hourNow;
        st.nextHour = hourNow;
        st.publicKey = key;
        _stationIds.push(StationRef({operatorOrg: spec.operatorOrg, mn: spec.mn}));
        emit StationRegistered(
            spec.mn,
            spec.operatorOrg,
            spec.stType,
            spec.latE6,
            spec.lonE6,
            spec.geohash,
            spec.areaCode,
            key,
            hourNow,
            callerOrg
        );
        emit StationKeyProven(spec.mn, spec.operatorOrg, pop.r, pop.s, verified);
    }

    /// @notice Deactivates a station for good: no further anchors. Caller: operator org or a regulator.
    function deactivateStation(uint64 operatorOrg, bytes24 mn) external {
        uint64 callerOrg = _callerOrg();
        Station storage st = _stations[operatorOrg][mn];
        require(st.registeredAt != 0, "Env: unknown station");
        if (callerOrg != operatorOrg) {
            require(_hasRole(callerOrg, Roles.ORG_REGULATOR), "Env: caller may not manage this station");
        }
        require(st.active, "Env: station already deactivated");
        st.active = false;
        st.deactivatedAt = uint64(block.timestamp);
        emit StationDeactivated(mn, operatorOrg, callerOrg, uint64(block.timestamp));
    }

    /// @notice Rotates the station's SM2 key with both keys' consent. Caller: an account of the station's
    ///   operator org. `newKeySig` and `oldKeySig` are the new and the current key's signatures over
    ///   SM3(keyRotationPreimage(operatorOrg, mn, newPublicKey)).
    function rotateStationKey(
        bytes24 mn,
        bytes calldata newPublicKey,
        KeySignature calldata newKeySig,
        KeySignature calldata oldKeySig
    ) external {
        uint64 callerOrg = _callerOrg();
        Station storage st = _stations[callerOrg][mn];
        require(st.registeredAt != 0, "Env: unknown station");
        _replaceKey(st, callerOrg, mn, newPublicKey, newKeySig, oldKeySig, callerOrg);
    }

    /// @notice A regulator replaces a station key that is lost or compromised; only the new key signs
    ///   (keyRotationPreimage, proof of possession). Caller: an account of a regulator.
    function replaceStationKey(
        uint64 operatorOrg,
        bytes24 mn,
        bytes calldata newPublicKey,
        KeySignature calldata newKeySig
    ) external {
        uint64 callerOrg = _callerOrg();
        require(_hasRole(callerOrg, Roles.ORG_REGULATOR), "Env: only a regulator replaces a station key");
        Station storage st = _stations[operatorOrg][mn];
        require(st.registeredAt != 0, "Env: unknown station");
        _replaceKey(st, operatorOrg, mn, newPublicKey, newKeySig, KeySignature(bytes32(0), bytes32(0)), callerOrg);
    }

    function _replaceKey(
        Station storage st,
        uint64 operatorOrg,
        bytes24 mn,
        bytes calldata newPublicKey,
        KeySignature calldata newKeySig,
        KeySignature memory oldKeySig,
        uint64 byOrg
    ) internal {
        require(st.active, "Env: station deactivated");
        bytes memory key = _normaliseKey(newPublicKey);
        bytes memory oldKey = st.publicKey;
        require(keccak256(key) != keccak256(oldKey), "Env: new key is the current key");
        bytes memory preimage = abi.encode(KEY_ROTATION_TAG, block.chainid, address(this), operatorOrg, mn, oldKey, key);
        bool verified = _checkKeySignature(preimage, key, newKeySig, "Env: invalid proof of possession");
        if (byOrg == operatorOrg) {
            _checkKeySignature(preimage, oldKey, oldKeySig, "Env: invalid old key consent");
        }
        st.publicKey = key;
        emit StationKeyRotated(mn, operatorOrg, byOrg, oldKey, key, newKeySig, oldKeySig, verified);
    }

    // ------------------------------------------------------------------ hourly anchors

    /// @notice Anchors one hour of a station's readings. Caller: an account of the station's operator org.
    /// @param r,s the station's SM2 signature over anchorMessage(mn, batch) (see the contract notice)
    function anchorHour(bytes24 mn, HourlyBatch calldata batch, bytes32 r, bytes32 s) external {
        uint64 callerOrg = _callerOrg();
        Station storage st = _stations[callerOrg][mn];
        require(st.registeredAt != 0, "Env: unknown station");
        require(st.active, "Env: station deactivated");
        uint64 hour = batch.hour;
        require(hour >= st.firstHour, "Env: hour before station registration");
        require(hour >= st.nextHour, "Env: hour not after last anchored hour");
        require(uint256(hour) * HOUR <= block.timestamp, "Env: hour in the future");
        _checkBatch(batch);
        uint16 aqi = _checkPollutants(batch.pollutants);
        require(r != bytes32(0) && s != bytes32(0), "Env: missing station signature");
        bool verified = false;
        if (gmOnChain) {
            bytes32 message =
                GmCrypto.sm3(abi.encode(ANCHOR_TAG, block.chainid, address(this), callerOrg, mn, batch));
            (bool ok,) = GmCrypto.sm2Verify(message, st.publicKey, r, s);
            require(ok, "Env: invalid station signature");
            verified = true;
        }

        if (hour > st.nextHour) {
            emit Gap(mn, callerOrg, st.nextHour, hour - 1);
            st.missingHours += hour - st.nextHour;
        }
        st.nextHour = hour + 1;
        st.anchorCount += 1;
        _anchors[callerOrg][mn][hour] = HourAnchor({
            merkleRoot: batch.merkleRoot,
            readingCount: batch.readingCount,
            firstReadingAt: batch.firstReadingAt,
            lastReadingAt: batch.lastReadingAt,
            aqi: aqi,
            anchoredAt: uint64(block.timestamp)
        });
        emit HourAnchored(mn, hour, callerOrg, batch, aqi, r, s, verified);
        st.exceedances += _emitExceedances(callerOrg, mn, hour, batch.pollutants);
    }

    // ------------------------------------------------------------------ views

    /// @notice The message M the station signs for `batch` (SM3 only where the precompile exists;
    ///   elsewhere compute SM3 off chain over anchorPreimage).
    function anchorPreimage(uint64 operatorOrg, bytes24 mn, HourlyBatch calldata batch)
        external
        view
        returns (bytes memory)
    {
        return abi.encode(ANCHOR_TAG, block.chainid, address(this), operatorOrg, mn, batch);
    }

    /// @notice The bytes whose SM3 the station key signs to prove possession at registration.
    function stationPopPreimage(uint64 operatorOrg, bytes24 mn, bytes calldata publicKey)
        external
        view
        returns (bytes memory)
    {
        return abi.encode(STATION_POP_TAG, block.chainid, address(this), operatorOrg, mn, _normaliseKey(publicKey));
    }

    /// @notice The bytes whose SM3 the new key (and, for the operator, the current key) signs to rotate.
    function keyRotationPreimage(uint64 operatorOrg, bytes24 mn, bytes calldata newPublicKey)
        external
        view
        returns (bytes memory)
    {
        Station storage st = _stations[operatorOrg][mn];
        require(st.registeredAt != 0, "Env: unknown station");
        return abi.encode(
            KEY_ROTATION_TAG, block.chainid, address(this), operatorOrg, mn, st.publicKey, _normaliseKey(newPublicKey)
        );
    }

    function station(uint64 operatorOrg, bytes24 mn) external view returns (Station memory) {
        return _stations[operatorOrg][mn];
    }

    function stationCount() external view returns (uint256) {
        return _stationIds.length;
    }

    function stationAt(uint256 index) external view returns (StationRef memory) {
        return _stationIds[index];
    }

    /// @notice The anchor of `hour`; anchoredAt == 0 when that hour was never anchored.
    function anchorOf(uint64 operatorOrg, bytes24 mn, uint64 hour) external view returns (HourAnchor memory) {
        return _anchors[operatorOrg][mn][hour];
    }

    /// @notice The last anchored hour and whether any hour was anchored at all.
    function lastAnchoredHour(uint64 operatorOrg, bytes24 mn) external view returns (uint64 hour, bool any) {
        Station storage st = _stations[operatorOrg][mn];
        if (st.anchorCount == 0) {
            return (0, false);
        }
        return (st.nextHour - 1, true);
    }

    /// @notice Missing hours of a station up to the current hour (excluded): the counted gaps plus the
    ///   hours since the last anchor that are already over, so silence shows before the next anchor.
    function missingHoursNow(uint64 operatorOrg, bytes24 mn) external view returns (uint64) {
        Station storage st = _stations[operatorOrg][mn];
        require(st.registeredAt != 0, "Env: unknown station");
        uint64 hourNow = uint64(block.timestamp / HOUR);
        uint64 end = st.active ? hourNow : uint64(st.deactivatedAt / HOUR);
        uint64 pending = end > st.nextHour ? end - st.nextHour : 0;
        return st.missingHours + pending;
    }

    // ------------------------------------------------------------------ internals

    function _callerOrg() internal view returns (uint64 orgId) {
        orgId = governance.orgOfAccount(msg.sender);
        require(orgId != 0, "Env: caller is not a member account");
        require(governance.orgActive(orgId), "Env: caller org inactive");
    }

    /// @dev Reverts with `reason` unless (r, s) is `key`'s SM2 signature of SM3(preimage) where the GM
    ///   precompile exists; true when checked on chain (elsewhere the signature is only recorded).
    function _checkKeySignature(bytes memory preimage, bytes memory key, KeySignature memory sig, string memory reason)
        internal
        view
        returns (bool)
    {
        require(sig.r != bytes32(0) && sig.s != bytes32(0), reason);
        if (!gmOnChain) {
            return false;
        }
        (bool ok,) = GmCrypto.sm2Verify(GmCrypto.sm3(preimage), key, sig.r, sig.s);
        require(ok, reason);
        return true;
    }

    function _hasRole(uint64 orgId, uint256 role) internal view returns (bool) {
        return governance.orgRoles(orgId) & role != 0;
    }

    function _checkBatch(HourlyBatch calldata batch) internal view {
        require(batch.merkleRoot != bytes32(0), "Env: empty Merkle root");
        require(batch.readingCount != 0, "Env: empty batch");
        uint256 start = uint256(batch.hour) * HOUR;
        require(
            batch.firstReadingAt >= start && batch.firstReadingAt <= batch.lastReadingAt
                && batch.lastReadingAt < start + HOUR,
            "Env: reading times outside the hour"
        );
        require(batch.lastReadingAt <= block.timestamp, "Env: reading time in the future");
        require(
            batch.iaqiTable == IAQI_HJ633_2012 || batch.iaqiTable == IAQI_HJ633_2026, "Env: unknown IAQI table"
        );
    }

    function _checkPollutants(PollutantSummary[] calldata ps) internal pure returns (uint16 aqi) {
        require(ps.length != 0 && ps.length <= MAX_POLLUTANTS, "Env: bad pollutant count");
        bytes8 previous = bytes8(0);
        for (uint256 i = 0; i < ps.length; ++i) {
            PollutantSummary calldata p = ps[i];
            require(p.code > previous, "Env: pollutant codes not strictly increasing");
            require(p.min <= p.avg && p.avg <= p.max, "Env: pollutant min/avg/max out of order");
            previous = p.code;
            if (p.iaqi > aqi) {
                aqi = p.iaqi;
            }
        }
    }

    function _emitExceedances(uint64 operatorOrg, bytes24 mn, uint64 hour, PollutantSummary[] calldata ps)
        internal
        returns (uint64 count)
    {
        for (uint256 i = 0; i < ps.length; ++i) {
            if (ps[i].iaqi > 100) {
                emit Exceedance(mn, hour, ps[i].code, operatorOrg, ps[i].iaqi, ps[i].max);
                ++count;
            }
        }
    }

    function _validStType(uint8 t) internal pure returns (bool) {
        return t == 21 || t == 22 || t == 23 || t == 31 || t == 32;
    }

    /// @dev one or more ASCII letters/digits followed only by zero bytes
    function _validMn(bytes24 mn) internal pure returns (bool) {
        if (mn[0] == 0) {
            return false;
        }
        bool ended = false;
        for (uint256 i = 0; i < 24; ++i) {
            bytes1 c = mn[i];
            if (c == 0) {
                ended = true;
            } else if (ended) {
                return false;
            } else if (!((c >= "0" && c <= "9") || (c >= "A" && c <= "Z") || (c >= "a" && c <= "z"))) {
                return false;
            }
        }
        return true;
    }

    /// @dev a point on the SM2 curve, 64 bytes x||y or 65 bytes 04||x||y; returned as 64 bytes
    function _normaliseKey(bytes calldata key) internal pure returns (bytes memory out) {
        out = key.length == 65 && key[0] == 0x04 ? key[1:] : key;
        require(Sm2Key.isValid(out), "Env: bad station public key");
    }
}
