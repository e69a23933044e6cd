//! e2e
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests fail by panicking
