// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.28;

/// @title Roles — organisation and staff role bit flags shared by every Shancheng contract.
library Roles {
    // organisation roles
    uint256 internal constant ORG_HOSPITAL = 1 << 0;
    uint256 internal constant ORG_PHARMACY = 1 << 1;
    uint256 internal constant ORG_MANUFACTURER = 1 << 2;
    uint256 internal constant ORG_DISTRIBUTOR = 1 << 3;
    uint256 internal constant ORG_LOGISTICS = 1 << 4;
    uint256 internal constant ORG_MONITORING_OPERATOR = 1 << 5;
    uint256 internal constant ORG_REGULATOR = 1 << 6;
    uint256 internal constant ORG_AUDITOR = 1 << 7;
    uint256 internal constant ORG_DEPARTMENT = 1 << 8;
    /// @dev every defined organisation role; a mask with other bits set is refused by governance
    uint256 internal constant ORG_ALL = (1 << 9) - 1;

    // staff roles
    uint256 internal constant STAFF_DOCTOR = 1 << 0;
    uint256 internal constant STAFF_PHARMACIST = 1 << 1;
    uint256 internal constant STAFF_DISPENSER = 1 << 2;
    uint256 internal constant STAFF_CHECKER = 1 << 3;
    uint256 internal constant STAFF_COURIER = 1 << 4;
    uint256 internal constant STAFF_OPERATOR = 1 << 5;
    /// @dev every defined staff role
    uint256 internal constant STAFF_ALL = (1 << 6) - 1;
}
