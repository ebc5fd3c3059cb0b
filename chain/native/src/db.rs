//! revm's `Database` over py-evm's committed state: the account trie (keyed by keccak(address), values
//! rlp([nonce, balance, storage_root, code_hash])), one storage trie per account (keyed by keccak(slot),
//! values rlp(int)) and code by its hash, all read through a Python callable `get(key) -> bytes | None`.

use std::cell::RefCell;
use std::collections::HashMap;

use pyo3::prelude::*;
use pyo3::types::PyBytes;
use revm::bytecode::Bytecode;
use revm::database_interface::{DBErrorMarker, DatabaseRef};
use revm::primitives::{keccak256, Address, Bytes, B256, KECCAK_EMPTY, U256};
use revm::state::AccountInfo;

use crate::mpt::{self, NodeSource, TrieError};
use crate::rlp;

/// A read of the state failed: a missing or malformed node, or the Python callable failed.
#[derive(Debug, Clone)]
pub struct StateError(pub String);

impl std::fmt::Display for StateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StateError {}
impl DBErrorMarker for StateError {}

impl From<TrieError> for StateError {
    fn from(e: TrieError) -> Self {
        StateError(e.to_string())
    }
}

/// The Python side's key-value reader, with a cache of what it returned (nodes and code are
/// content-addressed, so cached entries never go stale).
pub struct PyReader {
    get: Py<PyAny>,
    cache: RefCell<HashMap<B256, Option<Vec<u8>>>>,
}

impl PyReader {
    pub fn new(get: Py<PyAny>) -> Self {
        Self { get, cache: RefCell::new(HashMap::new()) }
    }

    fn read(&self, key: &B256) -> Result<Option<Vec<u8>>, TrieError> {
        if let Some(hit) = self.cache.borrow().get(key) {
            return Ok(hit.clone());
        }
        let value = Python::attach(|py| -> PyResult<Option<Vec<u8>>> {
            let out = self.get.bind(py).call1((PyBytes::new(py, key.as_slice()),))?;
            if out.is_none() {
                return Ok(None);
            }
            Ok(Some(out.cast::<PyBytes>()?.as_bytes().to_vec()))
        })
        .map_err(|e| TrieError::Source(e.to_string()))?;
        self.cache.borrow_mut().insert(*key, value.clone());
        Ok(value)
    }
}

impl NodeSource for &PyReader {
    fn node(&mut self, hash: &B256) -> Result<Option<Vec<u8>>, TrieError> {
        self.read(hash)
    }
}

/// One account as py-evm stores it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAccount {
    pub nonce: u64,
    pub balance: U256,
    pub storage_root: B256,
    pub code_hash: B256,
}

fn decode_account(encoded: &[u8]) -> Result<StoredAccount, TrieError> {
    let items = rlp::decode_exact(encoded)?.items()?;
    if items.len() != 4 {
        return Err(TrieError::Malformed("an account is not a list of 4 items"));
    }
    let hash = |i: usize| -> Result<B256, TrieError> {
        let b = items[i].0.bytes()?;
        if b.len() != 32 {
            return Err(TrieError::Malformed("an account hash is not 32 bytes"));
        }
        Ok(B256::from_slice(b))
    };
    Ok(StoredAccount {
        nonce: items[0].0.u64()?,
        balance: items[1].0.uint()?,
        storage_root: hash(2)?,
        code_hash: hash(3)?,
    })
}

/// The committed state at `state_root`, as revm reads it.
pub struct PyStateDb {
    reader: PyReader,
    state_root: B256,
    accounts: RefCell<HashMap<Address, Option<StoredAccount>>>,
    /// `block_hash(number) -> bytes`: the hash of an ancestor (BLOCKHASH asks only for the last 256)
    block_hash: Py<PyAny>,
    block_hashes: RefCell<HashMap<u64, B256>>,
}

impl PyStateDb {
    pub fn new(get: Py<PyAny>, state_root: B256, block_hash: Py<PyAny>) -> Self {
        Self {
            reader: PyReader::new(get),
            state_root,
            accounts: RefCell::new(HashMap::new()),
            block_hash,
            block_hashes: RefCell::new(HashMap::new()),
        }
    }

    /// The account at `address` in the committed state, or None.
    pub fn account(&self, address: &Address) -> Result<Option<StoredAccount>, StateError> {
        if let Some(hit) = self.accounts.borrow().get(address) {
            return Ok(hit.clone());
        }
        let key = keccak256(address.as_slice());
        let account = match mpt::get(&mut &self.reader, &self.state_root, key.as_slice())? {
            Some(encoded) => Some(decode_account(&encoded)?),
            None => None,
        };
        self.accounts.borrow_mut().insert(*address, account.clone());
        Ok(account)
    }
}

impl PyStateDb {
    /// The state root this database reads.
    pub fn state_root(&self) -> B256 {
        self.state_root
    }

    /// The node reader (for the trie updates that build the new state root).
    pub fn reader(&self) -> &PyReader {
        &self.reader
    }
}

impl DatabaseRef for PyStateDb {
    type Error = StateError;

    fn basic_ref(&self, address: Address) -> Result<Option<AccountInfo>, StateError> {
        let Some(account) = self.account(&address)? else { return Ok(None) };
        let code = if account.code_hash == KECCAK_EMPTY {
            Bytecode::default()
        } else {
            self.code_by_hash_ref(account.code_hash)?
        };
        Ok(Some(AccountInfo {
            balance: account.balance,
            nonce: account.nonce,
            code_hash: account.code_hash,
            account_id: None,
            code: Some(code),
        }))
    }

    fn code_by_hash_ref(&self, code_hash: B256) -> Result<Bytecode, StateError> {
        if code_hash == KECCAK_EMPTY {
            return Ok(Bytecode::default());
        }
        let code = self
            .reader
            .read(&code_hash)?
            .ok_or_else(|| StateError(format!("code {code_hash} is missing from the database")))?;
        Ok(Bytecode::new_legacy(Bytes::from(code)))
    }

    fn storage_ref(&self, address: Address, index: U256) -> Result<U256, StateError> {
        let Some(account) = self.account(&address)? else { return Ok(U256::ZERO) };
        let key = keccak256(index.to_be_bytes::<32>());
        match mpt::get(&mut &self.reader, &account.storage_root, key.as_slice())? {
            Some(encoded) => Ok(rlp::decode_exact(&encoded).and_then(|item| item.uint()).map_err(TrieError::from)?),
            None => Ok(U256::ZERO),
        }
    }

    fn block_hash_ref(&self, number: u64) -> Result<B256, StateError> {
        if let Some(hit) = self.block_hashes.borrow().get(&number) {
            return Ok(*hit);
        }
        let hash = Python::attach(|py| -> PyResult<Vec<u8>> {
            Ok(self.block_hash.bind(py).call1((number,))?.cast::<PyBytes>()?.as_bytes().to_vec())
        })
        .map_err(|e| StateError(format!("reading block {number}'s hash failed: {e}")))?;
        let hash = B256::try_from(hash.as_slice())
            .map_err(|_| StateError(format!("block {number}'s hash is not 32 bytes")))?;
        self.block_hashes.borrow_mut().insert(number, hash);
        Ok(hash)
    }
}
