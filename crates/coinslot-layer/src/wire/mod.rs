//! What the layer reads and writes on the wire, free of any state: `cashuB` tokens in their
//! plain form ([`nut00`]), NUT-24 headers and
//! payment requests ([`nut24`]), the HTTP `Payment` scheme ([`payment`]), the credentials
//! it signs ([`jwt`]), its own answers and errors (`errors`), and the discovery document
//! agents read before paying ([`discovery`]).

pub mod discovery;
pub(crate) mod errors;
pub mod jwt;
pub(crate) mod nut00;
pub mod nut24;
pub mod payment;
