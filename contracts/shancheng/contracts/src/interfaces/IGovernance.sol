// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title IGovernance — the consortium membership view every system contract consults.
/// @notice Organisation and staff roles are bit flags; their constants live in lib/Roles.sol.
///   organisation roles (uint256 mask):
///     ORG_HOSPITAL=1<<0, ORG_PHARMACY=1<<1, ORG_MANUFACTURER=1<<2, ORG_DISTRIBUTOR=1<<3, ORG_LOGISTICS=1<<4,
///     ORG_MONITORING_OPERATOR=1<<5, ORG_REGULATOR=1<<6, ORG_AUDITOR=1<<7, ORG_DEPARTMENT=1<<8
///   staff roles (uint256 mask):
///     STAFF_DOCTOR=1<<0, STAFF_PHARMACIST=1<<1, STAFF_DISPENSER=1<<2, STAFF_CHECKER=1<<3,
///     STAFF_COURIER=1<<4, STAFF_OPERATOR=1<<5
interface IGovernance {
    /// @notice True when `account` belongs to an active member organisation.
    function isAccountAllowed(address account) external view returns (bool);

    /// @notice The organisation owning `account`; 0 when it is not a member account.
    function orgOfAccount(address account) external view returns (uint64 orgId);

    /// @notice True when organisation `orgId` exists and is not suspended.
    function orgActive(uint64 orgId) external view returns (bool);

    /// @notice The role mask of organisation `orgId` (0 for an unknown org).
    function orgRoles(uint64 orgId) external view returns (uint256 roleMask);

    /// @notice The organisation's SM2 public key, 64 bytes x||y (empty for an unknown org).
    function orgPublicKey(uint64 orgId) external view returns (bytes memory);

    /// @notice A staff member, identified by their SM2 address: the last 20 bytes of SM3(x||y) of their
    ///   SM2 public key. Returns orgId 0 for an unknown staff address.
    function staffInfo(address staff)
        external
        view
        returns (uint64 orgId, uint256 roleMask, bool active, bytes memory publicKey);
}
