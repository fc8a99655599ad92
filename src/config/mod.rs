//! Configuration: the TOML schema ([`schema`]) and its validation.

pub mod schema;

pub use schema::*;
