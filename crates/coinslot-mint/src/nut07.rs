//! NUT-07: proof states. A proof is `SPENT` or `UNSPENT`; this mint never has `PENDING`
//! proofs, because a spend is one atomic write with no melt in flight.

use cashu::nuts::{CheckStateRequest, CheckStateResponse, ProofState, State};

use crate::error::Error;
use crate::Mint;

impl Mint {
    /// The state of each `Y`, in request order.
    pub async fn check_state(
        &self,
        request: CheckStateRequest,
    ) -> Result<CheckStateResponse, Error> {
        let max = self.inner.config.limits.max_checkstate;
        if request.ys.len() > max {
            return Err(Error::InvalidRequest(format!(
                "too many Ys: {} (the limit is {max})",
                request.ys.len()
            )));
        }
        let spent = self.inner.store.spent(&request.ys).await?;
        Ok(CheckStateResponse {
            states: request
                .ys
                .into_iter()
                .zip(spent)
                .map(|(y, spent)| ProofState {
                    y,
                    state: if spent { State::Spent } else { State::Unspent },
                    witness: None,
                })
                .collect(),
        })
    }
}
