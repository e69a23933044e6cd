//! NUT-09: restore. Returns the signatures issued for the blinded messages a wallet
//! re-derives from its seed.

use cashu::nuts::{RestoreRequest, RestoreResponse};

use crate::error::Error;
use crate::Mint;

impl Mint {
    /// Outputs this mint signed before, with their signatures, in request order.
    pub async fn restore(&self, request: RestoreRequest) -> Result<RestoreResponse, Error> {
        let max = self.inner.config.limits.max_outputs;
        if request.outputs.len() > max {
            return Err(Error::MaxOutputsExceeded {
                count: request.outputs.len(),
                max,
            });
        }
        let blinded: Vec<_> = request.outputs.iter().map(|o| o.blinded_secret).collect();
        let found = self.inner.store.blind_signatures(&blinded).await?;
        let mut outputs = Vec::new();
        let mut signatures = Vec::new();
        for (output, signature) in request.outputs.into_iter().zip(found) {
            if let Some(signature) = signature {
                outputs.push(output);
                signatures.push(signature);
            }
        }
        Ok(RestoreResponse {
            outputs,
            signatures,
        })
    }
}
