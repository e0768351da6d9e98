//! hull-image: the layered file system of hull. Image layers are unpacked once into a
//! content store and shared read-only by every container, which gets its own copy-on-write
//! upper dir on an overlayfs mount.
//!
//! The engine's entry points: [`ImageStore::open`], [`ImageStore::acquire`] (or
//! [`ImageStore::rootfs_for`] + [`ImageStore::hold`]), [`ImageStore::release`],
//! [`overlay::mount_container`] / [`overlay::unmount_container`] (or the general
//! [`overlay::mount`] / [`overlay::unmount`]), and [`sources::commit`].
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! let store = hull_image::ImageStore::open(Path::new("/var/lib/hull"))?;
//! // A new container "c1": the image is held (rmi refuses it) and its layers listed.
//! let rootfs = store.acquire("busybox", "c1")?;
//! let config = rootfs.config()?; // env, entrypoint, cmd, user, working dir
//! let dir = Path::new("/var/lib/hull/containers/c1");
//! let merged = hull_image::overlay::mount_container(&rootfs.lowers, dir, "c1", false)?;
//! // ... run the container with `merged` as its root ...
//! hull_image::overlay::unmount_container(dir)?;
//! store.release("c1")?; // when the container is removed
//! # let _ = (config, merged);
//! # Ok(())
//! # }
//! ```

pub mod archive;
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
