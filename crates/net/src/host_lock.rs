//! The host-wide lock over what every hull root (and hull-cni) shares on the host by name: the
//! default network's bridge (`hull0` for every root) and the `ip hull` nftables table. Making or
//! using one holds the lock shared; deleting one that nothing uses any more holds it exclusive,
//! so nothing is deleted between another process's making it and its use (a bridge and its
//! first port, the table and its first elements).

use std::fs::File;

use nix::fcntl::{Flock, FlockArg};

const PATH: &str = "/run/hull-net.lock";

/// Held while making or using a shared object (holding nothing when the lock's file cannot be
/// opened: then nothing that needs [`exclusive`] is deleted either).
#[derive(Debug)]
pub(crate) struct Shared {
    _flock: Option<Flock<File>>,
}

/// Held while deciding that a shared object is unused and deleting it.
#[derive(Debug)]
pub(crate) struct Exclusive {
    _flock: Flock<File>,
}

/// The lock shared.
pub(crate) fn shared() -> Shared {
    Shared {
        _flock: lock(FlockArg::LockShared),
    }
}

/// The lock exclusive, or None when its file cannot be opened.
pub(crate) fn exclusive() -> Option<Exclusive> {
    lock(FlockArg::LockExclusive).map(|_flock| Exclusive { _flock })
}

fn lock(arg: FlockArg) -> Option<Flock<File>> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(PATH)
        .ok()?;
    Flock::lock(file, arg).ok()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;

    /// A deletion (exclusive) waits for every process making or using a shared object, also
    /// one in this same process (each lock is its own open file).
    #[test]
    fn an_exclusive_holder_waits_for_the_shared_ones() {
        if !nix::unistd::geteuid().is_root() {
            hull_testkit::skip!("needs root to open {PATH}");
        }
        let held = shared();
        let also = shared();
        let (tx, rx) = mpsc::channel();
        let deleter = std::thread::spawn(move || {
            let guard = exclusive().unwrap();
            tx.send(()).unwrap();
            drop(guard);
        });
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(held);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        drop(also);
        rx.recv_timeout(Duration::from_secs(10)).unwrap();
        deleter.join().unwrap();
    }
}
