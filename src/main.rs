//! The `edgecam` command line.
fn main() {}
