//! A container's root file system (the overlay of its image's layers and its upper dir), and
//! who mounts it. The monitor does when it starts a created container (`hull start`). A `hull
//! run` does it itself, right after it hands its early monitor the row: the monitor reads and
//! checks config.json and records the runtime's state meanwhile, so the overlay's mount
//! (~0.3 ms) and that work overlap instead of following each other. The command then sends the
//! monitor one message on the socket it handed the row on: the root is mounted, or why not;
//! the monitor waits for it before the container's process exists, and before any teardown
//! (else a mount made after the teardown would be left behind).
//!
//! Either way the row exists first (the intent before the kernel object), and the monitor owns
//! the mount from then: it unmounts it at teardown; a command killed midway leaves at most a
//! mounted root, which that teardown removes.

use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};

use crate::error::EngineError;
use crate::paths;
use crate::store::Record;

/// What the command sends once the root is mounted; anything else is why it is not.
const MOUNTED: &[u8] = b"mounted";

/// The longest reason a command sends: one line.
const MAX_REASON: usize = 4096;

/// Whether the command that hands its early monitor this row mounts the root itself: every
/// container but a VM's, whose monitor builds the guest's root its own way.
pub(crate) fn by_starter(record: &Record) -> bool {
    record.settings.vm.is_none()
}

/// Mounts the container's root: the image's layers as lower dirs (through their short names
/// under `mount-targets/`), its upper and work dirs in its directory.
pub(crate) fn mount(root: &Path, record: &Record) -> Result<(), EngineError> {
    let id = record.id.as_str();
    let dir = paths::container_dir(root, id);
    let lowers = crate::mount_targets::under(root, &layers(root, record)?)?;
    // A `cp` into the stopped container finishes first: its overlay of the upper dir and this
    // one would not see each other's changes.
    let copying = crate::cp::overlay_lock(&dir)?;
    // A root deleted with the container is not synced to disk.
    hull_image::overlay::mount_container(&lowers, &dir, id, record.settings.rm)?;
    drop(copying);
    Ok(())
}

/// The image's layers of the container's root: as create recorded them, or from the image
/// store for a container made by an older hull (or whose layers moved).
fn layers(root: &Path, record: &Record) -> Result<Vec<PathBuf>, EngineError> {
    let lowers = &record.settings.lowers;
    if !lowers.is_empty() && lowers.iter().all(|l| l.is_dir()) {
        return Ok(lowers.clone());
    }
    let image = hull_image::ImageStore::open(root)?;
    Ok(image.rootfs_for(&record.settings.manifest)?.lowers)
}

/// In the command, after the row went to the monitor on `socket`: mounts the root and tells
/// the monitor how that went (its failure is the monitor's to report, as any other of the
/// container's start).
pub(crate) fn mount_and_tell(root: &Path, record: &Record, socket: &OwnedFd) {
    let text = match mount(root, record) {
        Ok(()) => MOUNTED.to_vec(),
        Err(e) => {
            let mut reason = e.to_string().into_bytes();
            reason.truncate(MAX_REASON);
            reason
        }
    };
    // A monitor gone already has nothing to wait for.
    while let Err(Errno::EINTR) = send(socket.as_raw_fd(), &text, MsgFlags::MSG_NOSIGNAL) {}
}

/// In the monitor: the command's word on the root, heard once.
#[derive(Debug)]
pub(crate) struct StarterMount {
    socket: Option<OwnedFd>,
    heard: Option<Result<(), String>>,
}

impl StarterMount {
    pub(crate) fn new(socket: OwnedFd) -> StarterMount {
        StarterMount {
            socket: Some(socket),
            heard: None,
        }
    }

    /// Waits until the command has mounted the root or failed to (or is gone: then the root
    /// may or may not be mounted, and is not the container's to run on).
    pub(crate) fn wait(&mut self) -> Result<(), String> {
        if let Some(heard) = &self.heard {
            return heard.clone();
        }
        let heard = match self.socket.take() {
            Some(socket) => hear(&socket),
            None => Err("the container's root was not mounted".to_string()),
        };
        self.heard = Some(heard.clone());
        heard
    }
}

fn hear(socket: &OwnedFd) -> Result<(), String> {
    let mut buf = vec![0u8; MAX_REASON];
    let n = loop {
        match recv(socket.as_raw_fd(), &mut buf, MsgFlags::empty()) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    match n {
        Ok(n) if buf.get(..n) == Some(MOUNTED) => Ok(()),
        Ok(0) | Err(_) => {
            Err("the command that started the container ended before mounting its root".into())
        }
        Ok(n) => Err(String::from_utf8_lossy(&buf[..n]).into_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockFlag, SockType};

    fn pair() -> (OwnedFd, OwnedFd) {
        socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap()
    }

    #[test]
    fn the_word_is_heard_once_and_kept() {
        let (a, b) = pair();
        send(a.as_raw_fd(), MOUNTED, MsgFlags::empty()).unwrap();
        let mut heard = StarterMount::new(b);
        assert_eq!(heard.wait(), Ok(()));
        drop(a);
        assert_eq!(heard.wait(), Ok(()));
    }

    #[test]
    fn a_reason_or_a_gone_command_is_a_failure() {
        let (a, b) = pair();
        send(a.as_raw_fd(), b"overlay: no such layer", MsgFlags::empty()).unwrap();
        assert_eq!(
            StarterMount::new(b).wait(),
            Err("overlay: no such layer".to_string())
        );
        let (a, b) = pair();
        drop(a);
        let gone = StarterMount::new(b).wait().unwrap_err();
        assert!(gone.contains("ended before mounting"), "{gone}");
    }
}
