//! hull-sys: the one home of the raw kernel wrappers that more than one hull crate needs, and of
//! the rules every crate must agree on (the container-id rule). Crates above it keep no copies.

pub mod id;
