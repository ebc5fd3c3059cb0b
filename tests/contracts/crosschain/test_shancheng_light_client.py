"""ShanchengLightClient on a real dev node (which has the GM precompile at 0x100a), written as attacks.

Two sources: the dev node's own chain (its certificates fetched through the SDK's RPC client: the honest path), and a
4-validator ledger driven as the ABCI application drives it, in which governance adds v4 with power 2 (block 1),
removes v0 (block 2) and v1 (block 4); its certificates are signed with the SDK's signer, forged ones too. Every
header case is also given to the SDK's verifier (CommitCertificate.verify and the header commitment): both must
agree. Gas of each call is printed (run with -s to see it)."""

from __future__ import annotations

from typing import Any

import pytest
import rlp
from _light_client_support import (
    KEYS,
    SOURCE_CHAIN_ID,
    SOURCE_ORIGIN,
    SourceChain,
    Target,
    abi_certificate,
    abi_set,
    add_validator,
    remove_validator,
    sdk_verdict,
)
from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from shancheng.chain.receipt_proofs import receipt_proof
from shancheng.sdk.chainproof import CommitCertificate, GenesisFile, ValidatorSet
from shancheng.sdk.chainproof.receipt import decode_header, verify_receipt_proof
from shancheng.sdk.client import RpcClient
from shancheng.sdk.client.proofs import batch_anchored_log
from shancheng.sdk.client.proven_events import header_rlp
from shancheng.sdk.crypto import sm3
from shancheng.sdk.evidence import source_id_of
from shancheng.sdk.evidence.chain import ChainProofError, ValidatorChange, verify_validator_changes
from shancheng.testing import deterministic_sm2_key, run_anvil
from shancheng.testing.solo import SoloNode

pytestmark = [pytest.mark.network, pytest.mark.slow]

NO_AUTHORITY = "0x" + "00" * 20
ANCHOR_ROOT = sm3(b"light-client source root 1")
ATTACKER = deterministic_sm2_key("lc-attacker")
SOURCE_ID = source_id_of(1, SOURCE_ORIGIN)


def gas_line(what: str, gas: int) -> None:
    print(f"GAS {what}: {gas}")


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> SourceChain:
    chain = SourceChain(tmp_path_factory.mktemp("lc-source"))
    # block 1: set(3) = v0..v3 + v4 (power 2); the hospital anchors its log's first checkpoint
    chain.produce([add_validator(4, 2)], [chain.anchor(1, ANCHOR_ROOT, 5, b"\0" * 32)])
    chain.produce([remove_validator(0)])  # block 2: set(4) = v1, v2, v3, v4
    chain.produce([])  # block 3
    chain.produce([remove_validator(1)])  # block 4: set(6) = v2, v3, v4
    chain.produce([])  # block 5
    chain.produce([])  # block 6
    chain.produce([remove_validator(0)] * 20)  # block 7: 20 transactions that revert (v0 is gone), a deeper trie
    assert sorted(chain.changes()) == [1, 2, 4]
    return chain


def deploy_for(target: Target, source: SourceChain, authority: str = NO_AUTHORITY) -> Any:
    contract, _ = target.deploy(source.identity, SOURCE_CHAIN_ID, source.genesis_set(), source.registry, authority)
    return contract


def change_args(source: SourceChain, height: int) -> tuple[Any, ...]:
    block = source.blocks[height]
    return block.header, abi_certificate(block.certificate), abi_set(source.changes()[height])


def store(target: Target, contract: Any, source: SourceChain, height: int) -> str | None:
    block = source.blocks[height]
    return target.transact(contract.functions.storeCheckpoint(block.header, abi_certificate(block.certificate)))[0]


def follow(target: Target, contract: Any, source: SourceChain, heights: list[int]) -> list[int]:
    """Submit the changes of ``heights``, storing the checkpoint of the block before each where it is needed."""
    gases = []
    for h in heights:
        if h > 1 and contract.functions.lastChangeHeight().call() != h - 1:
            assert store(target, contract, source, h - 1) is None
        failed, gas = target.transact(contract.functions.submitValidatorSetChange(*change_args(source, h)))
        assert failed is None, f"change {h}: {failed}"
        gases.append(gas)
    return gases


def sdk_changes(source: SourceChain, heights: list[int]) -> list[ValidatorChange]:
    out = []
    for h in heights:
        block = source.blocks[h]
        out.append(ValidatorChange(h, decode_header(block.header, hash_=keccak(block.header)), block.header,
                                   block.certificate, source.changes()[h]))
    return out


def source_genesis_file(source: SourceChain) -> GenesisFile:
    return GenesisFile.from_json(source.genesis.to_json())


# -- the honest path, from the node itself ----------------------------------------------------------------------

def test_a_header_certified_by_the_node_is_verified_and_its_checkpoint_stored_once(node: SoloNode,
                                                                                    target: Target) -> None:
    genesis = GenesisFile.load(node.genesis_path)
    validators = ValidatorSet.from_genesis(genesis)
    contract, deploy_gas = target.deploy(genesis.fingerprint, genesis.chain_id, validators, genesis.evidence_registry,
                                         NO_AUTHORITY)
    rpc = RpcClient(node.url)
    height = int(rpc.call("eth_blockNumber"), 16)
    assert height >= 1  # the deployment is in a block
    certificate = CommitCertificate.from_json(rpc.call("shancheng_getCommit", [hex(height)]))
    header = header_rlp(rpc.call("eth_getBlockByNumber", [hex(height), False]))
    assert sdk_verdict(header, certificate, validators, validators, chain_id=genesis.chain_id,
                       identity=genesis.fingerprint) is None

    failed, proven = target.call(contract.functions.verifyCertifiedHeader(header, abi_certificate(certificate)))
    assert failed is None
    decoded = decode_header(header)
    assert proven[0] == height and proven[1] == certificate.block_hash
    assert (proven[2], proven[3], proven[4]) == (decoded.state_root, decoded.receipts_root, decoded.timestamp)

    verify_gas = contract.functions.verifyCertifiedHeader(header, abi_certificate(certificate)).estimate_gas()
    failed, first = target.transact(contract.functions.storeCheckpoint(header, abi_certificate(certificate)))
    assert failed is None
    failed, again = target.transact(contract.functions.storeCheckpoint(header, abi_certificate(certificate)))
    assert failed is None
    stored = contract.functions.checkpoint(height).call()
    assert tuple(stored) == (certificate.block_hash, decoded.state_root, decoded.receipts_root, decoded.timestamp)
    assert contract.functions.followedHeight().call() == height
    assert again < first  # the second store writes nothing
    gas_line("deploy (1 validator)", deploy_gas)
    gas_line("verifyCertifiedHeader, 1 of 1 validators (estimate)", verify_gas)
    gas_line("storeCheckpoint, first, 1 of 1 validators", first)
    gas_line("storeCheckpoint, same header again", again)


def test_a_chain_without_the_gm_precompile_is_refused_at_deployment(source: SourceChain) -> None:
    with run_anvil() as w3:
        anvil = Target(w3, "0x" + sm3(b"light-client anvil deployer").hex())
        w3.provider.make_request("anvil_setBalance", [anvil.account.address, hex(10**20)])
        factory = w3.eth.contract(abi=anvil.artifact.abi, bytecode=anvil.artifact.bytecode)
        data = factory.constructor(
            source.identity, SOURCE_CHAIN_ID, abi_set(source.genesis_set()), to_checksum_address(source.registry),
            NO_AUTHORITY).build_transaction({"from": anvil.account.address, "gas": 8_000_000})
        with pytest.raises(Exception) as raised:
            w3.eth.call({"from": anvil.account.address, "data": data["data"], "gas": 8_000_000})
        assert anvil.error_name(raised.value) == "GmPrecompileMissing"


# -- validator-set changes --------------------------------------------------------------------------------------

def test_validator_set_changes_are_followed_in_sequence_from_height_plus_two(target: Target,
                                                                            source: SourceChain) -> None:
    contract = deploy_for(target, source)
    gases = follow(target, contract, source, [1, 2, 4])
    history = verify_validator_changes(source_genesis_file(source), sdk_changes(source, [1, 2, 4]))
    assert [e[0] for e in contract.functions.epochs().call()] == [0, 3, 4, 6]
    assert contract.functions.lastChangeHeight().call() == 4
    for height in range(1, 7):
        members, set_hash, total = contract.functions.validatorSetAt(height).call()
        expected = source.set_at(height)
        assert history.at(height) == expected
        assert [tuple(m) for m in members] == [(x, y, power) for x, y, _, power in abi_set(expected)]
        assert set_hash == expected.hash() and total == expected.total_power()
    failed, _ = target.call(contract.functions.validatorSetAt(7))
    assert failed == "HeightNotFollowed"
    block = source.blocks[6]
    failed, store_gas = target.transact(contract.functions.storeCheckpoint(block.header,
                                                                           abi_certificate(block.certificate)))
    assert failed is None
    for h, gas in zip([1, 2, 4], gases, strict=True):
        gas_line(f"submitValidatorSetChange at block {h} (set of {len(source.set_at(h).validators)} signing)", gas)
    gas_line("storeCheckpoint at block 6, 3 of 3 validators", store_gas)


def test_a_skipped_validator_set_change_is_refused(target: Target, source: SourceChain) -> None:
    contract = deploy_for(target, source)
    follow(target, contract, source, [1])
    failed, _ = target.transact(contract.functions.submitValidatorSetChange(*change_args(source, 4)))
    assert failed == "PreviousHeaderNotProven"  # block 3 first, which pins set(5)
    # set(3) as followed still holds v0 (block 2 removed it from set(4)): header 3 commits to another set(5)
    assert store(target, contract, source, 3) == "HeaderCommitmentMismatch"
    with pytest.raises(ChainProofError):
        verify_validator_changes(source_genesis_file(source), sdk_changes(source, [1, 4]))
    # and no header after the skipped change verifies either
    block = source.blocks[5]
    failed, _ = target.call(contract.functions.verifyCertifiedHeader(block.header, abi_certificate(block.certificate)))
    assert failed is not None


def test_a_change_cannot_be_followed_before_the_change_of_the_block_before_it(target: Target,
                                                                             source: SourceChain) -> None:
    """Blocks 1 and 2 both change the set: a relayer offering block 2's change first (which on its own header checks
    out) would leave set(3) unfollowed; the client asks for header 1 first, which does not verify without block 1's
    change."""
    contract = deploy_for(target, source)
    failed, _ = target.transact(contract.functions.submitValidatorSetChange(*change_args(source, 2)))
    assert failed == "PreviousHeaderNotProven"
    assert store(target, contract, source, 1) == "HeaderCommitmentMismatch"
    follow(target, contract, source, [1, 2])
    assert [e[0] for e in contract.functions.epochs().call()] == [0, 3, 4]


def test_a_change_replayed_or_submitted_out_of_order_is_refused(target: Target, source: SourceChain) -> None:
    contract = deploy_for(target, source)
    follow(target, contract, source, [1, 2, 4])
    for h in (2, 4, 1):
        failed, _ = target.transact(contract.functions.submitValidatorSetChange(*change_args(source, h)))
        assert failed == "ChangeOutOfOrder"
    with pytest.raises(ChainProofError, match="ascending"):
        verify_validator_changes(source_genesis_file(source), sdk_changes(source, [1, 2, 4, 2]))


# -- certified headers, attacked; the SDK's verifier must agree on each --------------------------------------------

@pytest.fixture(scope="module")
def followed(target: Target, source: SourceChain) -> Any:
    contract = deploy_for(target, source)
    follow(target, contract, source, [1, 2, 4])
    return contract


def both_verdicts(target: Target, contract: Any, source: SourceChain, height: int,
                  cert: CommitCertificate) -> tuple[str | None, str | None]:
    block = source.blocks[height]
    failed, _ = target.call(contract.functions.verifyCertifiedHeader(block.header, abi_certificate(cert)))
    sdk = sdk_verdict(block.header, cert, source.set_at(height), source.set_at(height + 2), chain_id=SOURCE_CHAIN_ID,
                      identity=source.identity)
    return failed, sdk


def signers(source: SourceChain, height: int, keys: list[int]) -> list[tuple[int, Any]]:
    """(index in set(height), key) for validators v<keys>."""
    members = [v.sm2_key for v in source.set_at(height).validators]
    return [(members.index(KEYS[k].public_key()), KEYS[k]) for k in keys]


def test_the_honest_certificate_is_accepted_by_both(target: Target, followed: Any, source: SourceChain) -> None:
    for height in range(1, 8):
        failed, sdk = both_verdicts(target, followed, source, height, source.blocks[height].certificate)
        assert (failed, sdk) == (None, None), height
    block = source.blocks[3]
    gas = followed.functions.verifyCertifiedHeader(block.header, abi_certificate(block.certificate)).estimate_gas()
    gas_line("verifyCertifiedHeader at block 3, 5 of 5 validators (estimate)", gas)
    block = source.blocks[1]
    gas = followed.functions.verifyCertifiedHeader(block.header, abi_certificate(block.certificate)).estimate_gas()
    gas_line("verifyCertifiedHeader at block 1, 4 of 4 validators (estimate)", gas)


def test_a_header_certified_by_two_thirds_of_the_power_or_less_is_refused(target: Target, followed: Any,
                                                                          source: SourceChain) -> None:
    # set(3) = v0..v3 (power 1 each) and v4 (power 2): four of five signers hold exactly 4 of 6, not more than 2/3
    cert = source.sign(3, source.blocks[3].certificate.block_hash, signers(source, 3, [0, 1, 2, 3]))
    failed, sdk = both_verdicts(target, followed, source, 3, cert)
    assert failed == "InsufficientPower" and sdk is not None and "voting power" in sdk
    cert = source.sign(3, source.blocks[3].certificate.block_hash, signers(source, 3, [0, 1, 4]))  # 4 of 6 again
    assert both_verdicts(target, followed, source, 3, cert)[0] == "InsufficientPower"
    cert = source.sign(3, source.blocks[3].certificate.block_hash, signers(source, 3, [0, 1, 2, 4]))  # 5 of 6
    assert both_verdicts(target, followed, source, 3, cert) == (None, None)


def test_a_header_certified_by_an_unknown_key_is_refused(target: Target, followed: Any, source: SourceChain) -> None:
    block_hash = source.blocks[3].certificate.block_hash
    honest = signers(source, 3, [1, 2, 4])
    cert = source.sign(3, block_hash, [*honest, (0, ATTACKER)])  # the attacker's signature in v0's place
    failed, sdk = both_verdicts(target, followed, source, 3, cert)
    assert failed == "InvalidSignature" and sdk is not None and "does not verify" in sdk
    cert = source.sign(3, block_hash, [*signers(source, 3, [1, 2]), (5, ATTACKER)])  # beyond the set
    failed, sdk = both_verdicts(target, followed, source, 3, cert)
    assert failed == "UnknownSigner" and sdk is not None and "unknown validator" in sdk


def test_a_duplicated_signer_is_refused(target: Target, followed: Any, source: SourceChain) -> None:
    # v4 (power 2) twice with v0 and v1 would count 6 of 6
    four = signers(source, 3, [4])[0]
    cert = source.sign(3, source.blocks[3].certificate.block_hash, [*signers(source, 3, [0, 1]), four, four])
    failed, sdk = both_verdicts(target, followed, source, 3, cert)
    assert failed == "DuplicateSigner" and sdk is not None and "twice" in sdk


def test_a_certificate_for_another_chain_is_refused(target: Target, followed: Any, source: SourceChain) -> None:
    block_hash = source.blocks[3].certificate.block_hash
    all_five = signers(source, 3, [0, 1, 2, 3, 4])
    for cert in (source.sign(3, block_hash, all_five, identity=sm3(b"another chain")),
                 source.sign(3, block_hash, all_five, chain_id=SOURCE_CHAIN_ID + 1)):
        failed, sdk = both_verdicts(target, followed, source, 3, cert)
        assert failed == "CertificateForAnotherChain" and sdk is not None and "chain" in sdk


def test_a_certificate_of_another_block_is_refused(target: Target, followed: Any, source: SourceChain) -> None:
    block = source.blocks[5]
    failed, _ = target.call(followed.functions.verifyCertifiedHeader(block.header,
                                                                     abi_certificate(source.blocks[3].certificate)))
    assert failed == "CertificateForAnotherBlock"
    assert sdk_verdict(block.header, source.blocks[3].certificate, source.set_at(5), source.set_at(7),
                       chain_id=SOURCE_CHAIN_ID, identity=source.identity) is not None


def test_a_removed_validators_signature_is_refused_once_its_removal_applies(target: Target, followed: Any,
                                                                            source: SourceChain) -> None:
    block_hash = source.blocks[5].certificate.block_hash  # v0 removed by block 2: not in set(4) on
    # v0 signs as it did at index 0 (now v1's place), with v2, v3: refused however it is counted
    cert = source.sign(5, block_hash, [(0, KEYS[0]), *signers(source, 5, [2, 3])])
    failed, sdk = both_verdicts(target, followed, source, 5, cert)
    assert failed == "InvalidSignature" and sdk is not None
    cert = source.sign(5, block_hash, [(4, KEYS[0]), *signers(source, 5, [2, 3])])  # v0 claims a new index
    failed, sdk = both_verdicts(target, followed, source, 5, cert)
    assert failed == "UnknownSigner" and sdk is not None
    # before the removal applies (block 3) v0's signature counts
    cert = source.sign(3, source.blocks[3].certificate.block_hash, signers(source, 3, [0, 2, 3, 4]))
    assert both_verdicts(target, followed, source, 3, cert) == (None, None)


def test_a_receipt_proof_through_branch_nodes_is_walked_as_the_sdk_walks_it(target: Target, followed: Any,
                                                                           source: SourceChain) -> None:
    block = source.blocks[7]
    receipts = list(source.ledger.receipts(7))
    assert len(receipts) == 20
    for index in (0, 9, 19):
        proof = receipt_proof(source.ledger.block_by_number(7), receipts, index)
        assert verify_receipt_proof(proof).status == 0  # the SDK proves a failed transaction there
        nodes = [bytes.fromhex(n[2:]) for n in proof["proof"]]
        assert len(nodes) >= 2
        args = (block.header, abi_certificate(block.certificate))
        failed, _ = target.call(followed.functions.verifyAnchorInHeader(*args, index, nodes, b"\1" * 32, 1))
        assert failed == "AnchorTransactionFailed"  # the walk reached the receipt, which is no anchor
        failed, _ = target.call(followed.functions.verifyAnchorInHeader(*args, (index + 1) % 20, nodes,
                                                                        b"\1" * 32, 1))
        assert failed == "TrieProofInvalid"


def test_an_anchor_in_a_block_certified_by_four_validators_is_proven_as_the_sdk_proves_it(
        target: Target, followed: Any, source: SourceChain) -> None:
    block = source.blocks[1]
    proof = receipt_proof(source.ledger.block_by_number(1), list(source.ledger.receipts(1)), 1)
    proven = verify_receipt_proof(proof)
    words = batch_anchored_log(proven, registry=source.registry, source_id=SOURCE_ID, sequence=1)  # type: ignore[arg-type]
    assert words is not None and proven.status == 1
    nodes = [bytes.fromhex(n[2:]) for n in proof["proof"]]
    fn = followed.functions.verifyAnchorInHeader(block.header, abi_certificate(block.certificate), 1, nodes,
                                                 SOURCE_ID, 1)
    failed, result = target.call(fn)
    assert failed is None
    assert tuple(result) == (words.org_id, SOURCE_ID, 1, words.root, words.tree_size, 1, block.certificate.block_hash)
    assert (words.root, words.tree_size, words.org_id) == (ANCHOR_ROOT, 5, 1)
    gas_line("verifyAnchorInHeader, 4 of 4 validators (estimate)", fn.estimate_gas())
    assert store(target, followed, source, 1) is None
    fn = followed.functions.verifyAnchor(1, 1, nodes, SOURCE_ID, 1)
    assert target.call(fn) == (None, result)
    gas_line("verifyAnchor under a stored checkpoint, 2 transactions in the block (estimate)", fn.estimate_gas())


# -- checkpoints and recovery ----------------------------------------------------------------------------------

def test_a_conflicting_certified_header_at_a_stored_height_is_refused_and_the_stored_one_kept(
        target: Target, followed: Any, source: SourceChain) -> None:
    block = source.blocks[5]
    failed, _ = target.transact(followed.functions.storeCheckpoint(block.header, abi_certificate(block.certificate)))
    assert failed is None
    # the validators equivocate: another header 5 (another state root), certified by all of set(5)
    fields = rlp.decode(block.header)
    fields[3] = sm3(b"another state")
    forged = rlp.encode(fields)
    cert = source.sign(5, keccak(forged), signers(source, 5, [1, 2, 3, 4]))
    failed, _ = target.call(followed.functions.verifyCertifiedHeader(forged, abi_certificate(cert)))
    assert failed is None  # a certified header on its own; only the stored checkpoint shows the conflict
    failed, _ = target.transact(followed.functions.storeCheckpoint(forged, abi_certificate(cert)))
    assert failed == "ConflictingCheckpoint"
    assert followed.functions.checkpoint(5).call()[0] == block.certificate.block_hash
    failed, _ = target.call(followed.functions.checkpoint(4))
    assert failed == "NoCheckpoint"


def test_only_the_recovery_authority_resets_the_set_and_never_below_what_was_followed(target: Target,
                                                                                      source: SourceChain) -> None:
    contract = deploy_for(target, source, authority=target.account.address)
    follow(target, contract, source, [1])
    stranger = deploy_for(target, source)  # no authority: no recovery at all
    new_set = abi_set(ValidatorSet.from_json([source.set_at(6).to_json()[0]]))
    failed, _ = target.transact(stranger.functions.recover(10, new_set))
    assert failed == "NotRecoveryAuthority"
    failed, _ = target.transact(contract.functions.recover(3, new_set))
    assert failed == "RecoveryHeightTooLow"  # block 1 was followed: heights up to 3 are proven
    failed, gas = target.transact(contract.functions.recover(10, new_set))
    assert failed is None
    assert contract.functions.lastChangeHeight().call() == 9
    assert [e[0] for e in contract.functions.epochs().call()] == [0, 3, 10]
    gas_line("recover (1 validator)", gas)
