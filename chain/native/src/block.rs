//! One block executed by revm on py-evm's committed state: Cancun rules, zero base fee, the GM precompile.
//! Every transaction's outcome (status, gas, logs) and the block's write set (the changed accounts and
//! storage slots, before any trie is updated).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use revm::context::{BlockEnv, CfgEnv, Context, ContextTr, Journal, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::context_interface::result::{EVMError, ExecutionResult};
use revm::database::CacheDB;
use revm::database_interface::Database;
use revm::handler::{EthPrecompiles, ExecuteCommitEvm, ExecuteEvm, MainBuilder};
use revm::precompile::Precompiles;
use revm::primitives::hardfork::SpecId;
use revm::primitives::{Address, Bytes, Log, B256, U256};
use revm::state::EvmState;

use crate::db::{PyStateDb, StateError};
use crate::gm::GM_PRECOMPILE;
use crate::tx::{self, Transaction};

/// Cancun's precompiles plus the GM precompile at 0x100a.
pub fn gm_cancun_precompiles() -> &'static Precompiles {
    static PRECOMPILES: OnceLock<Precompiles> = OnceLock::new();
    PRECOMPILES.get_or_init(|| {
        let mut p = Precompiles::cancun().clone();
        p.extend([GM_PRECOMPILE]);
        p
    })
}

/// What a block is executed in besides its transactions (py-evm's header fields of the new block).
#[derive(Debug, Clone)]
pub struct BlockInput {
    pub chain_id: u64,
    pub number: u64,
    pub timestamp: u64,
    pub coinbase: Address,
    pub gas_limit: u64,
    pub prevrandao: B256,
    /// the Governance contract: a block calling it is built "carefully" (see [`execute`])
    pub governance: Option<Address>,
}

/// What became of one input transaction.
#[derive(Debug, Clone)]
pub enum TxResult {
    /// not a valid transaction whatever the state
    Invalid(String),
    /// valid, but left out of the block
    LeftOut {
        tx: Transaction,
        why: LeftOut,
        reason: String,
    },
    Included(Included),
}

/// Why a valid transaction is not in the block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeftOut {
    /// not the sender's next nonce
    BadNonce,
    /// does not fit the block's remaining gas
    NoRoom,
    /// refused by the EVM before execution (e.g. a value or gas the sender cannot pay)
    Refused,
}

#[derive(Debug, Clone)]
pub struct Included {
    /// the transaction's position in the input
    pub position: usize,
    pub tx: Transaction,
    pub success: bool,
    pub gas_used: u64,
    pub cumulative_gas_used: u64,
    pub logs: Vec<Log>,
    pub created: Option<Address>,
}

/// One account's state after the block, where the block changed it.
#[derive(Debug, Clone, Default)]
pub struct AccountWrite {
    /// (nonce, balance, code hash); None when the account no longer exists (self-destructed, or touched empty)
    pub info: Option<(u64, U256, B256)>,
    /// the code, when the block deployed it
    pub code: Option<Bytes>,
    /// the account's storage was wiped (created or destroyed) before the slots below were written
    pub storage_cleared: bool,
    /// written slots and their values after the block (0 deletes)
    pub storage: BTreeMap<U256, U256>,
}

/// The block's outcome before any trie is updated.
#[derive(Debug, Clone, Default)]
pub struct BlockResult {
    pub txs: Vec<TxResult>,
    pub writes: BTreeMap<Address, AccountWrite>,
    pub gas_used: u64,
}

fn record(writes: &mut BTreeMap<Address, AccountWrite>, state: &EvmState) {
    for (address, account) in state {
        if !account.is_touched() {
            continue;
        }
        let entry = writes.entry(*address).or_default();
        if account.is_selfdestructed() || account.is_empty() {
            *entry = AccountWrite { info: None, code: None, storage_cleared: true, storage: BTreeMap::new() };
            continue;
        }
        if account.is_created() {
            entry.storage_cleared = true;
            entry.storage.clear();
            entry.code = account.info.code.as_ref().map(|c| c.original_bytes());
        }
        entry.info = Some((account.info.nonce, account.info.balance, account.info.code_hash));
        for (slot, value) in account.changed_storage_slots() {
            entry.storage.insert(*slot, value.present_value());
        }
    }
}

/// Execute the decoded transactions in order; with `reserve`, each included transaction takes its whole
/// gas limit from the block's remaining gas, else the gas it used. Returns None when `reserve` is set and
/// the EVM refused a transaction (py-evm then rebuilds the block without reserving).
fn run(
    db: &PyStateDb,
    input: &BlockInput,
    decoded: Vec<Result<Transaction, String>>,
    reserve: bool,
) -> Result<Option<BlockResult>, StateError> {
    let block = BlockEnv {
        number: U256::from(input.number),
        beneficiary: input.coinbase,
        timestamp: U256::from(input.timestamp),
        gas_limit: input.gas_limit,
        basefee: 0,
        difficulty: U256::ZERO,
        prevrandao: Some(input.prevrandao),
        blob_excess_gas_and_price: Some(BlobExcessGasAndPrice::new_with_spec(0, SpecId::CANCUN)),
        ..BlockEnv::default()
    };
    let mut cfg = CfgEnv::new_with_spec(SpecId::CANCUN);
    cfg.chain_id = input.chain_id;
    let ctx = Context::<BlockEnv, TxEnv, CfgEnv, CacheDB<&PyStateDb>, Journal<CacheDB<&PyStateDb>>, ()>::new(
        CacheDB::new(db),
        SpecId::CANCUN,
    )
    .with_block(block)
    .with_cfg(cfg);
    let mut evm = ctx
        .build_mainnet()
        .with_precompiles(EthPrecompiles { precompiles: gm_cancun_precompiles(), spec: SpecId::CANCUN });
    let mut out = BlockResult::default();
    let mut reserved = 0u64;
    for (position, decoded) in decoded.into_iter().enumerate() {
        let tx = match decoded {
            Ok(tx) => tx,
            Err(reason) => {
                out.txs.push(TxResult::Invalid(reason));
                continue;
            }
        };
        let expected = evm.ctx.db_mut().basic(tx.sender)?.map_or(0, |a| a.nonce);
        if tx.nonce != expected {
            let reason = format!("nonce {} is not the sender's next nonce {expected}", tx.nonce);
            out.txs.push(TxResult::LeftOut { tx, why: LeftOut::BadNonce, reason });
            continue;
        }
        let gas_left = input.gas_limit - if reserve { reserved } else { out.gas_used };
        if tx.gas_limit > gas_left {
            let reason = format!("gas {} does not fit the block's remaining gas {gas_left}", tx.gas_limit);
            out.txs.push(TxResult::LeftOut { tx, why: LeftOut::NoRoom, reason });
            continue;
        }
        let executed = match evm.transact(tx.env()) {
            Ok(executed) => executed,
            Err(EVMError::Database(e)) => return Err(e),
            Err(_) if reserve => return Ok(None),
            Err(e) => {
                out.txs.push(TxResult::LeftOut { tx, why: LeftOut::Refused, reason: e.to_string() });
                continue;
            }
        };
        reserved += tx.gas_limit;
        record(&mut out.writes, &executed.state);
        evm.commit(executed.state);
        let result = executed.result;
        let gas_used = result.tx_gas_used();
        out.gas_used += gas_used;
        let created = result.created_address();
        let success = matches!(result, ExecutionResult::Success { .. });
        out.txs.push(TxResult::Included(Included {
            position,
            tx,
            success,
            gas_used,
            cumulative_gas_used: out.gas_used,
            logs: result.into_logs(),
            created,
        }));
    }
    Ok(Some(out))
}

/// Decode `raw_txs` and recover their senders, on every core for a large block.
fn decode_all(raw_txs: &[Vec<u8>], input: &BlockInput) -> Vec<Result<Transaction, String>> {
    let decode = |raw: &Vec<u8>| tx::decode(raw, input.chain_id, input.gas_limit).map_err(|e| e.0);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
    let chunk = raw_txs.len().div_ceil(threads).max(64);
    if raw_txs.len() <= chunk {
        return raw_txs.iter().map(decode).collect();
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = raw_txs
            .chunks(chunk)
            .map(|part| scope.spawn(move || part.iter().map(decode).collect::<Vec<_>>()))
            .collect();
        parts.into_iter().flat_map(|part| part.join().expect("decoding does not panic")).collect()
    })
}

/// Execute `raw_txs` in order as block `input.number` on `db` (the parent's committed state), with the
/// inclusion rules of py-evm's engine (`shancheng.chain.pyevm_execution`): its fast path when no transaction
/// calls Governance — a transaction is left out when its gas limit exceeds the block's gas limit minus the
/// gas limits of the transactions before it — unless the EVM refuses one of them; then, and when Governance
/// is called, its careful path: left out when the gas limit exceeds the gas the block has not used.
pub fn execute(db: &PyStateDb, input: &BlockInput, raw_txs: &[Vec<u8>]) -> Result<BlockResult, StateError> {
    let decoded = decode_all(raw_txs, input);
    let calls_governance = decoded.iter().any(|t| matches!(t, Ok(tx) if tx.to.is_some() && tx.to == input.governance));
    if !calls_governance {
        if let Some(out) = run(db, input, decoded.clone(), true)? {
            return Ok(out);
        }
    }
    Ok(run(db, input, decoded, false)?.expect("the careful path always finishes"))
}
