//! A block's roots: the state root (the write set applied to the parent's account and storage tries), and
//! the transactions and receipts roots, with the receipts (status, cumulative gas, bloom, logs) encoded
//! as py-evm encodes them.

use std::collections::BTreeMap;

use revm::primitives::{keccak256, Address, Log, B256, U256};

use crate::block::{AccountWrite, Included};
use crate::db::PyStateDb;
use crate::mpt::{TrieError, EMPTY_ROOT};
use crate::rlp;
use crate::trie_update::{ordered_root, TrieUpdate};

/// A 2048-bit log bloom.
pub type Bloom = [u8; 256];

fn accrue(bloom: &mut Bloom, data: &[u8]) {
    let h = keccak256(data);
    for i in 0..3 {
        let bit = (usize::from(h[2 * i]) << 8 | usize::from(h[2 * i + 1])) & 2047;
        bloom[255 - bit / 8] |= 1 << (bit % 8);
    }
}

/// The bloom of `logs`.
pub fn logs_bloom(logs: &[Log]) -> Bloom {
    let mut bloom = [0u8; 256];
    for log in logs {
        accrue(&mut bloom, log.address.as_slice());
        for topic in log.topics() {
            accrue(&mut bloom, topic.as_slice());
        }
    }
    bloom
}

/// The receipt's encoding in the receipts trie (typed: type byte + RLP; legacy: RLP).
pub fn encode_receipt(inc: &Included) -> Vec<u8> {
    let mut logs = Vec::new();
    for log in &inc.logs {
        let topics: Vec<u8> = log.topics().iter().flat_map(|t| rlp::encode_bytes(t.as_slice())).collect();
        let mut item = rlp::encode_bytes(log.address.as_slice());
        item.extend(rlp::encode_list(&topics));
        item.extend(rlp::encode_bytes(&log.data.data));
        logs.extend(rlp::encode_list(&item));
    }
    let mut payload = rlp::encode_bytes(if inc.success { &[1] } else { &[] });
    payload.extend(rlp::encode_uint(U256::from(inc.cumulative_gas_used)));
    payload.extend(rlp::encode_bytes(&logs_bloom(&inc.logs)));
    payload.extend(rlp::encode_list(&logs));
    let body = rlp::encode_list(&payload);
    if inc.tx.tx_type == 0 {
        body
    } else {
        [vec![inc.tx.tx_type], body].concat()
    }
}

/// The roots of a block and the database writes that hold its new nodes.
pub struct Roots {
    pub state_root: B256,
    pub transactions_root: B256,
    pub receipts_root: B256,
    pub bloom: Bloom,
    /// new trie nodes and new code (hash -> bytes)
    pub nodes: Vec<(B256, Vec<u8>)>,
}

fn account_rlp(nonce: u64, balance: U256, storage_root: &B256, code_hash: &B256) -> Vec<u8> {
    let mut payload = rlp::encode_uint(U256::from(nonce));
    payload.extend(rlp::encode_uint(balance));
    payload.extend(rlp::encode_bytes(storage_root.as_slice()));
    payload.extend(rlp::encode_bytes(code_hash.as_slice()));
    rlp::encode_list(&payload)
}

/// The state root after `writes` on `db`'s state.
fn state_root(
    db: &PyStateDb,
    writes: &BTreeMap<Address, AccountWrite>,
    nodes: &mut Vec<(B256, Vec<u8>)>,
) -> Result<B256, TrieError> {
    let mut accounts = TrieUpdate::new(db.state_root());
    let mut source = db.reader();
    for (address, write) in writes {
        let key = keccak256(address.as_slice());
        let Some((nonce, balance, code_hash)) = write.info else {
            accounts.set(&mut source, key.as_slice(), Vec::new())?;
            continue;
        };
        let old = db.account(address).map_err(|e| TrieError::Source(e.0))?;
        let base = match (&old, write.storage_cleared) {
            (Some(account), false) => account.storage_root,
            _ => EMPTY_ROOT,
        };
        let mut storage = TrieUpdate::new(base);
        for (slot, value) in &write.storage {
            let value = if value.is_zero() { Vec::new() } else { rlp::encode_uint(*value) };
            storage.set(&mut source, keccak256(slot.to_be_bytes::<32>()).as_slice(), value)?;
        }
        let storage_root = storage.commit(nodes);
        if let Some(code) = &write.code {
            nodes.push((code_hash, code.to_vec()));
        }
        accounts.set(&mut source, key.as_slice(), account_rlp(nonce, balance, &storage_root, &code_hash))?;
    }
    Ok(accounts.commit(nodes))
}

/// The roots of the block that included `included` (in order) with the write set `writes` on `db`.
pub fn block_roots(
    db: &PyStateDb,
    included: &[&Included],
    raw: &[&[u8]],
    writes: &BTreeMap<Address, AccountWrite>,
) -> Result<Roots, TrieError> {
    let mut nodes = Vec::new();
    let state_root = state_root(db, writes, &mut nodes)?;
    let transactions_root = ordered_root(&raw.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), &mut nodes)?;
    let receipts: Vec<Vec<u8>> = included.iter().map(|inc| encode_receipt(inc)).collect();
    let receipts_root = ordered_root(&receipts, &mut nodes)?;
    let mut bloom = [0u8; 256];
    for inc in included {
        for (b, r) in bloom.iter_mut().zip(logs_bloom(&inc.logs)) {
            *b |= r;
        }
    }
    Ok(Roots { state_root, transactions_root, receipts_root, bloom, nodes })
}
