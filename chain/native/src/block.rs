//! One block executed by revm on py-evm's committed state: Cancun rules, zero base fee, the GM precompile,
//! and py-evm's engine's inclusion rules (membership in Governance, nonce, gas, py-evm's balance checks).
//! Every transaction's outcome (status, gas, logs), the block's write set (the changed accounts and storage
//! slots) and its roots with the trie nodes py-evm's engine writes for it.

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use revm::context::{BlockEnv, CfgEnv, Context, ContextTr, Journal, TxEnv};
use revm::context_interface::block::BlobExcessGasAndPrice;
use revm::context_interface::result::{EVMError, ExecutionResult};
use revm::database::CacheDB;
use revm::database_interface::Database;
use revm::handler::{EthPrecompiles, ExecuteCommitEvm, ExecuteEvm, MainBuilder, MainnetContext, MainnetEvm};
use revm::precompile::Precompiles;
use revm::primitives::hardfork::SpecId;
use revm::primitives::{keccak256, Address, Bytes, Log, TxKind, B256, U256};
use revm::state::EvmState;

use crate::db::{PyStateDb, StateError};
use crate::gm::GM_PRECOMPILE;
use crate::roots::{self, NodeMap, OrderedTrie, Roots, StateTries};
use crate::tx::{self, Transaction};

/// The gas py-evm's engine gives the Governance view call (`shancheng.chain.permissions`).
const VIEW_GAS: u64 = 50_000_000;

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
    /// the Governance contract: senders must be accounts of active members (`isAccountAllowed`), and a
    /// block calling it is built "carefully" (see [`execute`])
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeftOut {
    /// the sender is not an account of an active member (Governance.isAccountAllowed)
    NotMember,
    /// not the sender's next nonce
    BadNonce,
    /// does not fit the block's remaining gas
    NoRoom,
    /// refused before execution, by py-evm's rules
    Refused(Refusal),
}

/// py-evm's refusals of a transaction before execution (its `validate_transaction`, in its order), with
/// what its messages print.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// the balance is below gas * gas price: (that cost, the balance)
    Gas(String, U256),
    /// the balance is below value + gas * gas price: (that total, the balance)
    Value(String, U256),
    /// the balance is below gas * max fee per gas
    MaxFee,
    /// refused by revm (not expected once py-evm's checks passed): its message
    Evm(String),
}

/// py-evm's balance checks of `tx` from a sender holding `balance` (a zero base fee; the nonce is checked
/// before): None when it may be executed.
fn refusal(tx: &Transaction, balance: U256) -> Option<Refusal> {
    use revm::primitives::ruint::aliases::U512;
    let wide = |v: U256| U512::from(v);
    let balance_w = wide(balance);
    let gas = U512::from(tx.gas_limit);
    let gas_cost = gas * wide(tx.effective_gas_price());
    if balance_w < gas_cost {
        return Some(Refusal::Gas(gas_cost.to_string(), balance));
    }
    let total = gas_cost + wide(tx.value);
    if balance_w < total {
        return Some(Refusal::Value(total.to_string(), balance));
    }
    if balance_w < gas * wide(tx.max_fee) {
        return Some(Refusal::MaxFee);
    }
    None
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

/// The block's outcome and roots.
pub struct BlockResult {
    pub txs: Vec<TxResult>,
    pub writes: BTreeMap<Address, AccountWrite>,
    pub gas_used: u64,
    pub roots: Roots,
}

pub(crate) type BlockEvm<'a> = MainnetEvm<MainnetContext<CacheDB<&'a PyStateDb>>>;

pub(crate) fn new_evm<'a>(db: &'a PyStateDb, input: &BlockInput) -> BlockEvm<'a> {
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
    // py-evm's rules: no EIP-3607, its own balance checks (`refusal`), a priority fee above the max fee
    // allowed; the block gas limit is checked before (and the Governance view gets VIEW_GAS whatever it is)
    cfg.disable_eip3607 = true;
    cfg.disable_balance_check = true;
    cfg.disable_priority_fee_check = true;
    cfg.disable_block_gas_limit = true;
    Context::<BlockEnv, TxEnv, CfgEnv, CacheDB<&PyStateDb>, Journal<CacheDB<&PyStateDb>>, ()>::new(
        CacheDB::new(db),
        SpecId::CANCUN,
    )
    .with_block(block)
    .with_cfg(cfg)
    .build_mainnet()
    .with_precompiles(EthPrecompiles { precompiles: gm_cancun_precompiles(), spec: SpecId::CANCUN })
}

/// Governance.isAccountAllowed(sender) on `evm`'s state, called as py-evm's engine calls it (from the zero
/// address, nonce 0, gas price 0, VIEW_GAS gas; nothing kept): false when it reverts; an error when it halts
/// or returns something else than an ABI bool (py-evm's engine raises then too).
fn is_allowed(evm: &mut BlockEvm<'_>, governance: Address, chain_id: u64, sender: Address) -> Result<bool, StateError> {
    static SELECTOR: OnceLock<[u8; 4]> = OnceLock::new();
    let selector = SELECTOR.get_or_init(|| {
        let h = keccak256(b"isAccountAllowed(address)");
        [h[0], h[1], h[2], h[3]]
    });
    let mut data = selector.to_vec();
    data.extend([0u8; 12]);
    data.extend(sender.as_slice());
    let probe = TxEnv {
        tx_type: 0,
        caller: Address::ZERO,
        gas_limit: VIEW_GAS,
        gas_price: 0,
        kind: TxKind::Call(governance),
        value: U256::ZERO,
        data: Bytes::from(data),
        nonce: 0,
        chain_id: Some(chain_id),
        ..TxEnv::default()
    };
    let result = match evm.transact(probe) {
        Ok(executed) => executed.result,
        Err(EVMError::Database(e)) => return Err(e),
        Err(e) => return Err(StateError(format!("Governance.isAccountAllowed could not be called: {e}"))),
    };
    match result {
        ExecutionResult::Success { output, .. } => {
            let out = output.into_data();
            if out.len() != 32 {
                return Ok(false);
            }
            if out[..31].iter().any(|&b| b != 0) || out[31] > 1 {
                return Err(StateError("Governance.isAccountAllowed returned something else than a bool".into()));
            }
            Ok(out[31] == 1)
        }
        ExecutionResult::Revert { .. } => Ok(false),
        ExecutionResult::Halt { reason, .. } => {
            Err(StateError(format!("Governance.isAccountAllowed failed: {reason:?}")))
        }
    }
}

/// The careful path's tries, committed after every included transaction as py-evm's careful path does.
struct Steps<'a> {
    state: StateTries<'a>,
    txs: OrderedTrie,
    receipts: OrderedTrie,
    nodes: NodeMap,
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

/// Execute the decoded transactions in order; with `reserve` (py-evm's fast path), each included
/// transaction takes its whole gas limit from the block's remaining gas, else the gas it used, and the
/// tries are committed after every transaction (py-evm's careful path). Returns None when `reserve` is set
/// and a transaction is refused (py-evm then rebuilds the block carefully).
fn run(
    db: &PyStateDb,
    input: &BlockInput,
    raw_txs: &[Vec<u8>],
    decoded: &[Result<Transaction, String>],
    reserve: bool,
) -> Result<Option<BlockResult>, StateError> {
    let mut evm = new_evm(db, input);
    // py-evm's fast path asks Governance on the committed state, its careful path inside the block and again
    // after every Governance transaction
    let mut committed_view: Option<BlockEvm<'_>> = None;
    let mut allowed: HashMap<Address, bool> = HashMap::new();
    let mut steps = (!reserve).then(|| Steps {
        state: StateTries::new(db),
        txs: OrderedTrie::default(),
        receipts: OrderedTrie::default(),
        nodes: NodeMap::new(),
    });
    let mut txs = Vec::with_capacity(decoded.len());
    let mut writes = BTreeMap::new();
    let mut gas_used = 0u64;
    let mut reserved = 0u64;
    for (position, decoded) in decoded.iter().enumerate() {
        let tx = match decoded {
            Ok(tx) => tx.clone(),
            Err(reason) => {
                txs.push(TxResult::Invalid(reason.clone()));
                continue;
            }
        };
        if let Some(governance) = input.governance {
            let ok = match allowed.get(&tx.sender) {
                Some(ok) => *ok,
                None => {
                    let view =
                        if reserve { committed_view.get_or_insert_with(|| new_evm(db, input)) } else { &mut evm };
                    let ok = is_allowed(view, governance, input.chain_id, tx.sender)?;
                    allowed.insert(tx.sender, ok);
                    ok
                }
            };
            if !ok {
                txs.push(TxResult::LeftOut { tx, why: LeftOut::NotMember, reason: String::new() });
                continue;
            }
        }
        let account = evm.ctx.db_mut().basic(tx.sender)?;
        let (expected, balance) = account.map_or((0, U256::ZERO), |a| (a.nonce, a.balance));
        if tx.nonce != expected {
            let reason = format!("nonce {} is not the sender's next nonce {expected}", tx.nonce);
            txs.push(TxResult::LeftOut { tx, why: LeftOut::BadNonce, reason });
            continue;
        }
        let gas_left = input.gas_limit - if reserve { reserved } else { gas_used };
        if tx.gas_limit > gas_left {
            let reason = format!("gas {} does not fit the block's remaining gas {gas_left}", tx.gas_limit);
            txs.push(TxResult::LeftOut { tx, why: LeftOut::NoRoom, reason });
            continue;
        }
        if let Some(refused) = refusal(&tx, balance) {
            if reserve {
                return Ok(None);
            }
            txs.push(TxResult::LeftOut { tx, why: LeftOut::Refused(refused), reason: String::new() });
            continue;
        }
        let env = tx.env().ok_or_else(|| {
            StateError(format!(
                "transaction {} has a fee above 2^128 wei the sender can pay: revm cannot run it",
                tx.hash
            ))
        })?;
        let executed = match evm.transact(env) {
            Ok(executed) => executed,
            Err(EVMError::Database(e)) => return Err(e),
            Err(_) if reserve => return Ok(None),
            Err(e) => {
                let why = LeftOut::Refused(Refusal::Evm(e.to_string()));
                txs.push(TxResult::LeftOut { tx, why, reason: String::new() });
                continue;
            }
        };
        reserved += tx.gas_limit;
        record(&mut writes, &executed.state);
        let mut delta = BTreeMap::new();
        if steps.is_some() {
            record(&mut delta, &executed.state);
        }
        evm.commit(executed.state);
        let result = executed.result;
        gas_used += result.tx_gas_used();
        let created = result.created_address();
        let success = matches!(result, ExecutionResult::Success { .. });
        let included = Included {
            position,
            tx,
            success,
            gas_used: result.tx_gas_used(),
            cumulative_gas_used: gas_used,
            logs: result.into_logs(),
            created,
        };
        if let Some(steps) = steps.as_mut() {
            steps.state.step(&delta, &mut steps.nodes).map_err(|e| StateError(e.to_string()))?;
            steps.txs.push(raw_txs[position].clone(), &mut steps.nodes).map_err(|e| StateError(e.to_string()))?;
            steps
                .receipts
                .push(roots::encode_receipt(&included), &mut steps.nodes)
                .map_err(|e| StateError(e.to_string()))?;
        }
        if !reserve && included.tx.to.is_some() && included.tx.to == input.governance {
            allowed.clear(); // membership may have changed
        }
        txs.push(TxResult::Included(included));
    }
    let included: Vec<&Included> = txs
        .iter()
        .filter_map(|t| match t {
            TxResult::Included(inc) => Some(inc),
            _ => None,
        })
        .collect();
    let roots = match steps {
        Some(steps) => Roots {
            state_root: steps.state.root(),
            transactions_root: steps.txs.root(),
            receipts_root: steps.receipts.root(),
            bloom: roots::block_bloom(&included),
            nodes: steps.nodes,
        },
        None => {
            let raw: Vec<&[u8]> = included.iter().map(|inc| raw_txs[inc.position].as_slice()).collect();
            roots::block_roots(db, &included, &raw, &writes).map_err(|e| StateError(e.to_string()))?
        }
    };
    Ok(Some(BlockResult { txs, writes, gas_used, roots }))
}

/// Decode `raw_txs` and recover their senders, on every core for a large block.
/// `senders`, when given, are the transactions' senders, already recovered (not recovered again).
fn decode_all(
    raw_txs: &[Vec<u8>],
    senders: Option<&[Address]>,
    input: &BlockInput,
) -> Vec<Result<Transaction, String>> {
    let decode = |(i, raw): (usize, &Vec<u8>)| {
        tx::decode_checked(raw, input.chain_id, input.gas_limit, senders.map(|s| s[i])).map_err(|e| e.0)
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(16);
    let chunk = raw_txs.len().div_ceil(threads).max(64);
    if raw_txs.len() <= chunk || senders.is_some() {
        return raw_txs.iter().enumerate().map(decode).collect();
    }
    std::thread::scope(|scope| {
        let parts: Vec<_> = raw_txs
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                scope.spawn(move || {
                    part.iter().enumerate().map(|(i, raw)| decode((c * chunk + i, raw))).collect::<Vec<_>>()
                })
            })
            .collect();
        parts.into_iter().flat_map(|part| part.join().expect("decoding does not panic")).collect()
    })
}

/// Execute `raw_txs` in order as block `input.number` on `db` (the parent's committed state), with the
/// inclusion rules of py-evm's engine (`shancheng.chain.pyevm_execution`): its fast path when no transaction
/// calls Governance — a transaction is left out when its gas limit exceeds the block's gas limit minus the
/// gas limits of the transactions before it — unless the EVM refuses one of them; then, and when Governance
/// is called, its careful path: left out when the gas limit exceeds the gas the block has not used.
pub fn execute(
    db: &PyStateDb,
    input: &BlockInput,
    raw_txs: &[Vec<u8>],
    senders: Option<&[Address]>,
) -> Result<BlockResult, StateError> {
    let decoded = decode_all(raw_txs, senders, input);
    let calls_governance = decoded.iter().any(|t| matches!(t, Ok(tx) if tx.to.is_some() && tx.to == input.governance));
    if !calls_governance {
        if let Some(out) = run(db, input, raw_txs, &decoded, true)? {
            return Ok(out);
        }
    }
    Ok(run(db, input, raw_txs, &decoded, false)?.expect("the careful path always finishes"))
}
