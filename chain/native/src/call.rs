//! One eth_call / eth_estimateGas attempt: a transaction run by revm on a block's committed state as the next
//! block would run it, and nothing kept. py-evm's costless execution (`shancheng.chain.calls`): no fee (gas
//! price 0), the sender's nonce whatever it is, no EIP-3607, no block gas limit; the caller checks the value
//! against the balance first (go-ethereum's wording).

use revm::context::TxEnv;
use revm::context_interface::result::{EVMError, ExecutionResult, HaltReason};
use revm::context_interface::transaction::AccessList;
use revm::handler::ExecuteEvm;
use revm::primitives::{Address, Bytes, TxKind, U256};

use crate::block::{new_evm, BlockInput};
use crate::db::{PyStateDb, StateError};

/// The call: who, what, with how much gas.
pub struct CallTx {
    pub caller: Address,
    pub to: Option<Address>,
    pub value: U256,
    pub data: Bytes,
    pub gas: u64,
    /// an EIP-2930 list: its intrinsic gas is charged and its entries start warm
    pub access_list: Option<AccessList>,
}

/// What the attempt came to. `gas_used` is what a transaction would be charged (after the refund).
pub enum CallOutcome {
    Success {
        output: Bytes,
        gas_used: u64,
        refunded: u64,
    },
    Revert {
        output: Bytes,
        gas_used: u64,
    },
    Halt {
        reason: String,
        gas_used: u64,
    },
    /// not a transaction the EVM runs at this gas (below its intrinsic gas, ...)
    Invalid(String),
}

/// Run `tx` on `db` (the committed state of the block before `block`) in `block`'s context.
pub fn run(db: &PyStateDb, block: &BlockInput, tx: &CallTx) -> Result<CallOutcome, StateError> {
    let mut evm = new_evm(db, block);
    evm.ctx.cfg.disable_nonce_check = true;
    let env = TxEnv {
        tx_type: if tx.access_list.is_some() { 1 } else { 0 },
        caller: tx.caller,
        gas_limit: tx.gas,
        gas_price: 0,
        kind: tx.to.map_or(TxKind::Create, TxKind::Call),
        value: tx.value,
        data: tx.data.clone(),
        nonce: 0,
        chain_id: Some(block.chain_id),
        access_list: tx.access_list.clone().unwrap_or_default(),
        ..TxEnv::default()
    };
    let result = match evm.transact(env) {
        Ok(executed) => executed.result,
        Err(EVMError::Database(e)) => return Err(e),
        Err(e) => return Ok(CallOutcome::Invalid(e.to_string())),
    };
    let gas_used = result.tx_gas_used();
    Ok(match result {
        ExecutionResult::Success { output, gas, .. } => {
            CallOutcome::Success { output: output.into_data(), gas_used, refunded: gas.inner_refunded() }
        }
        ExecutionResult::Revert { output, .. } => CallOutcome::Revert { output, gas_used },
        ExecutionResult::Halt { reason, .. } => CallOutcome::Halt { reason: halt_message(&reason), gas_used },
    })
}

/// go-ethereum's words for an exceptional halt, where it has them.
fn halt_message(reason: &HaltReason) -> String {
    match reason {
        HaltReason::OutOfGas(_) => "out of gas".into(),
        HaltReason::OpcodeNotFound | HaltReason::InvalidFEOpcode => "invalid opcode".into(),
        HaltReason::StackUnderflow => "stack underflow".into(),
        HaltReason::StackOverflow => "stack limit reached 1024".into(),
        HaltReason::InvalidJump => "invalid jump destination".into(),
        HaltReason::StateChangeDuringStaticCall => "write protection".into(),
        HaltReason::OutOfOffset => "return data out of bounds".into(),
        HaltReason::CallTooDeep => "max call depth exceeded".into(),
        HaltReason::CreateCollision => "contract address collision".into(),
        HaltReason::CreateContractSizeLimit => "max code size exceeded".into(),
        HaltReason::CreateContractStartingWithEF => "invalid code: must not begin with 0xef".into(),
        HaltReason::CreateInitCodeSizeLimit => "max initcode size exceeded".into(),
        other => format!("{other:?}"),
    }
}
