//! Test helpers for this crate's and other crates' tests (feature `testsuite`; never in the
//! binary).

pub mod dns;

pub use dns::TestDns;
