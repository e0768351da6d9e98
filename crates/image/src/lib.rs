//! hull-image: the layered file system of hull. Image layers are unpacked once into a
//! content store and shared read-only by every container, which gets its own copy-on-write
//! upper dir on an overlayfs mount.
//!
//! The engine's entry points: [`ImageStore::open`], [`ImageStore::rootfs_for`],
//! [`ImageStore::hold`] / [`ImageStore::release`], [`overlay::mount`] and [`overlay::unmount`].

pub mod digest;
pub mod manifest;
pub mod overlay;
pub mod reference;
pub mod registry;
pub mod sources;
pub mod store;
mod sys;
pub mod time;
pub mod unpack;

pub use digest::Digest;
pub use store::{ImageStore, Rootfs, StoreError};
