//! GPIO alarm inputs and outputs.
