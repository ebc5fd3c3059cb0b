//! A block's roots: the state root (the write set applied to the parent's account and storage tries), and
//! the transactions and receipts roots, with the receipts (status, cumulative gas, bloom, logs) encoded
//! as py-evm encodes them; step by step where py-evm's careful path persists every transaction's tries.

use std::collections::{BTreeMap, HashMap};

use revm::primitives::{keccak256, Address, Log, B256, U256};

use crate::block::{AccountWrite, Included};
use crate::db::{PyReader, PyStateDb};
use crate::mpt::{NodeSource, TrieError, EMPTY_ROOT};
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

/// New trie nodes and code by hash (py-evm's database keys and values).
pub type NodeMap = HashMap<B256, Vec<u8>>;

/// The roots of a block and the database writes that hold its new nodes.
pub struct Roots {
    pub state_root: B256,
    pub transactions_root: B256,
    pub receipts_root: B256,
    pub bloom: Bloom,
    /// new trie nodes and new code (hash -> bytes)
    pub nodes: NodeMap,
}

fn account_rlp(nonce: u64, balance: U256, storage_root: &B256, code_hash: &B256) -> Vec<u8> {
    let mut payload = rlp::encode_uint(U256::from(nonce));
    payload.extend(rlp::encode_uint(balance));
    payload.extend(rlp::encode_bytes(storage_root.as_slice()));
    payload.extend(rlp::encode_bytes(code_hash.as_slice()));
    rlp::encode_list(&payload)
}

/// Nodes written earlier in the block first, then the committed database.
struct Layered<'a> {
    new: &'a NodeMap,
    base: Option<&'a PyReader>,
}

impl NodeSource for Layered<'_> {
    fn node(&mut self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError> {
        if let Some(encoded) = self.new.get(hash) {
            return Ok(Some(encoded.clone()));
        }
        match self.base {
            Some(mut reader) => reader.node(hash),
            None => Ok(None),
        }
    }
}

/// The state tries changed step by step, as py-evm persists them: once per block on its fast path, after
/// every transaction on its careful path (each step's new nodes are written, intermediate ones included).
pub struct StateTries<'a> {
    db: &'a PyStateDb,
    root: B256,
    /// the storage root of every account changed so far (the empty root for a deleted one)
    storage_roots: HashMap<Address, B256>,
}

impl<'a> StateTries<'a> {
    pub fn new(db: &'a PyStateDb) -> Self {
        Self { db, root: db.state_root(), storage_roots: HashMap::new() }
    }

    /// The state root after the steps so far.
    pub fn root(&self) -> B256 {
        self.root
    }

    /// Apply `writes` (the changes since the last step) and commit them: their new nodes and code go into
    /// `nodes`, which later steps read first.
    pub fn step(&mut self, writes: &BTreeMap<Address, AccountWrite>, nodes: &mut NodeMap) -> Result<B256, TrieError> {
        let db = self.db;
        let mut fresh = Vec::new();
        let mut source = Layered { new: nodes, base: Some(db.reader()) };
        let mut accounts = TrieUpdate::new(self.root);
        for (address, write) in writes {
            let key = keccak256(address.as_slice());
            let Some((nonce, balance, code_hash)) = write.info else {
                accounts.set(&mut source, key.as_slice(), Vec::new())?;
                self.storage_roots.insert(*address, EMPTY_ROOT);
                continue;
            };
            let base = if write.storage_cleared {
                EMPTY_ROOT
            } else if let Some(root) = self.storage_roots.get(address) {
                *root
            } else {
                db.account(address).map_err(|e| TrieError::Source(e.0))?.map_or(EMPTY_ROOT, |a| a.storage_root)
            };
            let mut storage = TrieUpdate::new(base);
            for (slot, value) in &write.storage {
                let value = if value.is_zero() { Vec::new() } else { rlp::encode_uint(*value) };
                storage.set(&mut source, keccak256(slot.to_be_bytes::<32>()).as_slice(), value)?;
            }
            let storage_root = storage.commit(&mut fresh);
            self.storage_roots.insert(*address, storage_root);
            if let Some(code) = &write.code {
                fresh.push((code_hash, code.to_vec()));
            }
            accounts.set(&mut source, key.as_slice(), account_rlp(nonce, balance, &storage_root, &code_hash))?;
        }
        self.root = accounts.commit(&mut fresh);
        nodes.extend(fresh);
        Ok(self.root)
    }
}

/// A trie of values under rlp(0), rlp(1), ... (a block's transactions or receipts) grown one value at a
/// time, each step's nodes committed (py-evm's careful path writes the trie of every prefix of the block).
#[derive(Default)]
pub struct OrderedTrie {
    root: Option<B256>,
    count: usize,
}

impl OrderedTrie {
    /// The root (the empty trie's with no value).
    pub fn root(&self) -> B256 {
        self.root.unwrap_or(EMPTY_ROOT)
    }

    /// Append `value` and commit: the new nodes go into `nodes` (which holds every earlier step's).
    pub fn push(&mut self, value: Vec<u8>, nodes: &mut NodeMap) -> Result<(), TrieError> {
        let mut fresh = Vec::new();
        let mut trie = TrieUpdate::new(self.root());
        trie.set(&mut Layered { new: nodes, base: None }, &rlp::encode_uint(U256::from(self.count)), value)?;
        self.root = Some(trie.commit(&mut fresh));
        self.count += 1;
        nodes.extend(fresh);
        Ok(())
    }
}

/// The bloom of the block that included `included`.
pub fn block_bloom(included: &[&Included]) -> Bloom {
    let mut bloom = [0u8; 256];
    for inc in included {
        for (b, r) in bloom.iter_mut().zip(logs_bloom(&inc.logs)) {
            *b |= r;
        }
    }
    bloom
}

/// The roots of the block that included `included` (in order; `raw` their encodings) with the write set
/// `writes` on `db`, computed once for the whole block (py-evm's fast path).
pub fn block_roots(
    db: &PyStateDb,
    included: &[&Included],
    raw: &[&[u8]],
    writes: &BTreeMap<Address, AccountWrite>,
) -> Result<Roots, TrieError> {
    let mut nodes = NodeMap::new();
    let state_root = StateTries::new(db).step(writes, &mut nodes)?;
    let mut fresh = Vec::new();
    let transactions_root = ordered_root(&raw.iter().map(|r| r.to_vec()).collect::<Vec<_>>(), &mut fresh)?;
    let receipts: Vec<Vec<u8>> = included.iter().map(|inc| encode_receipt(inc)).collect();
    let receipts_root = ordered_root(&receipts, &mut fresh)?;
    nodes.extend(fresh);
    Ok(Roots { state_root, transactions_root, receipts_root, bloom: block_bloom(included), nodes })
}
