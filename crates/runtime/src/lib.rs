//! placeholder
pub mod security;
pub mod sys;
