//! Network namespaces: naming one (by path or pid), running code inside one (setns on a thread
//! moves only that thread), and creating or removing a persistent, bind-mounted namespace as
//! `ip netns add` does.

use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{setns, unshare, CloneFlags};

/// Errors about network namespaces.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error("network namespace {0} does not exist")]
    Missing(String),
    #[error("cannot open network namespace {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a network namespace")]
    NotNetns { path: String },
    #[error("cannot enter network namespace: {0}")]
    Enter(nix::Error),
    #[error("cannot create network namespace {path}: {reason}")]
    Create { path: String, reason: String },
    #[error("cannot remove network namespace {path}: {source}")]
    Remove { path: String, source: nix::Error },
    #[error("thread running inside a network namespace panicked")]
    Panicked,
}

/// A network namespace as the engine or a CNI runtime names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NetnsRef {
    /// A file such as /run/netns/NAME or /proc/PID/ns/net.
    Path(PathBuf),
    /// The namespace of a running process.
    Pid(i32),
}

impl NetnsRef {
    /// The file that names the namespace.
    pub fn path(&self) -> PathBuf {
        match self {
            NetnsRef::Path(p) => p.clone(),
            NetnsRef::Pid(pid) => PathBuf::from(format!("/proc/{pid}/ns/net")),
        }
    }

    /// Opens the namespace, checking that it is one.
    pub fn open(&self) -> Result<File, NetnsError> {
        let path = self.path();
        let shown = path.display().to_string();
        let file = File::open(&path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                NetnsError::Missing(shown.clone())
            } else {
                NetnsError::Open {
                    path: shown.clone(),
                    source,
                }
            }
        })?;
        if !is_netns(&file) {
            return Err(NetnsError::NotNetns { path: shown });
        }
        Ok(file)
    }
}

/// Identity of a namespace (device and inode of its nsfs file), stable while it lives.
pub fn identity(file: &File) -> Result<(u64, u64), std::io::Error> {
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// Whether the namespace a path named (with this identity) still exists.
pub fn still_alive(path: &Path, id: (u64, u64)) -> bool {
    let Ok(file) = File::open(path) else {
        return false;
    };
    is_netns(&file) && identity(&file).is_ok_and(|i| i == id)
}

fn is_netns(file: &File) -> bool {
    // nsfs files answer NS_GET_NSTYPE; a plain file does not.
    nix::sys::statfs::fstatfs(file).is_ok_and(|s| s.filesystem_type().0 == libc::NSFS_MAGIC)
}

/// Runs `f` inside the namespace `ns`; sockets it opens stay in that namespace after it
/// returns. A single-threaded process (a container's monitor) runs it on its own thread, which
/// goes back to its namespace after: no thread is started, so the process stays one that may
/// fork and clone (and keeps no thread's malloc arena for the container's lifetime). Others
/// run it on a helper thread.
pub fn run_in<T: Send>(ns: &File, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
    if hull_sys::procfs::thread_count() == Some(1) {
        return run_on_this_thread(ns, f);
    }
    std::thread::scope(|s| {
        s.spawn(|| {
            setns(ns, CloneFlags::CLONE_NEWNET).map_err(NetnsError::Enter)?;
            Ok(f())
        })
        .join()
        .map_err(|_| NetnsError::Panicked)?
    })
}

fn run_on_this_thread<T>(ns: &File, f: impl FnOnce() -> T) -> Result<T, NetnsError> {
    let own = File::open("/proc/thread-self/ns/net").map_err(|source| NetnsError::Open {
        path: "/proc/thread-self/ns/net".into(),
        source,
    })?;
    setns(ns, CloneFlags::CLONE_NEWNET).map_err(NetnsError::Enter)?;
    let back = Back(own);
    let out = f();
    drop(back);
    Ok(out)
}

/// The thread's own namespace, entered again once `f` returns or unwinds.
struct Back(File);

impl Drop for Back {
    fn drop(&mut self) {
        // A process left in the container's namespace would make its next veth or address
        // there, so it must not go on.
        if setns(&self.0, CloneFlags::CLONE_NEWNET).is_err() {
            std::process::abort();
        }
    }
}

/// Creates a new network namespace kept alive by a bind mount at `path` (like
/// `ip netns add`); the caller owns it and removes it with [`remove`].
pub fn create(path: &Path) -> Result<(), NetnsError> {
    let err = |reason: String| NetnsError::Create {
        path: path.display().to_string(),
        reason,
    };
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(|e| err(e.to_string()))?;
    let res = std::thread::scope(|s| {
        s.spawn(|| -> Result<(), String> {
            unshare(CloneFlags::CLONE_NEWNET).map_err(|e| format!("unshare: {e}"))?;
            mount(
                Some("/proc/thread-self/ns/net"),
                path,
                None::<&str>,
                MsFlags::MS_BIND,
                None::<&str>,
            )
            .map_err(|e| format!("bind mount: {e}"))
        })
        .join()
        .unwrap_or_else(|_| Err("thread panicked".to_string()))
    });
    if let Err(reason) = res {
        let _ = std::fs::remove_file(path);
        return Err(err(reason));
    }
    Ok(())
}

/// Creates a new network namespace that only the returned descriptor holds: it ends with its
/// last holder (the descriptor, a process that entered it, a socket or tap made in it), so a
/// holder killed with SIGKILL leaves nothing mounted behind. Its loopback is up, as every
/// container's is (`AttachRequest::loopback_up` then spares the attach entering it).
pub fn unnamed() -> Result<File, NetnsError> {
    let err = |reason: String| NetnsError::Create {
        path: "(unnamed)".into(),
        reason,
    };
    // On the calling thread, which goes back to its namespace after: a thread of its own
    // (stack, clone, exit, join) cost an early monitor about a fifth of a millisecond on
    // the run's path, and the namespace is per thread either way.
    let own = File::open("/proc/thread-self/ns/net").map_err(|e| err(format!("open: {e}")))?;
    unshare(CloneFlags::CLONE_NEWNET).map_err(|e| err(format!("unshare: {e}")))?;
    let back = Back(own);
    let made = loopback_up()
        .map_err(|e| format!("bringing up lo: {e}"))
        .and_then(|()| File::open("/proc/thread-self/ns/net").map_err(|e| format!("open: {e}")));
    drop(back);
    made.map_err(err)
}

/// Unmounts and removes a namespace file made by [`create`].
pub fn remove(path: &Path) -> Result<(), NetnsError> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::Error::EINVAL) | Err(nix::Error::ENOENT) => {}
        Err(source) => {
            return Err(NetnsError::Remove {
                path: path.display().to_string(),
                source,
            })
        }
    }
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(NetnsError::Remove {
            path: path.display().to_string(),
            source: nix::Error::from_raw(e.raw_os_error().unwrap_or(libc::EIO)),
        }),
    }
}

/// The loopback's interface index in every network namespace (the kernel registers it
/// first, and it can be neither moved nor deleted): no lookup needed.
const LOOPBACK_IFINDEX: u32 = 1;

/// Brings up the loopback of the namespace the calling thread is in.
pub(crate) fn loopback_up() -> Result<(), crate::error::NetError> {
    let mut nl = crate::netlink::Netlink::open()?;
    Ok(nl.link_up(LOOPBACK_IFINDEX)?)
}
