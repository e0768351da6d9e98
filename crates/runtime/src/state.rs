//! The runtime's record of its containers: one directory per container under `--root`, holding
//! `state.json` (written by rename), a copy of the config, the exec FIFO while the container is
//! created but not started, and a lock file that serializes commands on the same id.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};
use oci_spec::runtime::Spec;
use serde::{Deserialize, Serialize};

const STATE_FILE: &str = "state.json";
const CONFIG_FILE: &str = "config.json";
const LOCK_FILE: &str = "lock";
pub const EXEC_FIFO: &str = "exec.fifo";
/// The end of the private name a create gives the directory before it is in place.
const CLAIM_SUFFIX: &str = ".creating";

#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("container with given ID already exists")]
    Exists,
    #[error("container does not exist")]
    NotExist,
    #[error("invalid container id format: {0}")]
    InvalidId(#[from] hull_sys::id::IdError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: corrupt state: {source}")]
    Corrupt {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("cannot encode the {what} as JSON: {source}")]
    Encode {
        what: &'static str,
        source: serde_json::Error,
    },
}

/// `map_err(encode("what"))` for a value that did not serialize.
pub fn encode(what: &'static str) -> impl FnOnce(serde_json::Error) -> StateError {
    move |source| StateError::Encode { what, source }
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StateError + '_ {
    move |source| StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// The lifecycle states of the runtime spec, plus runc's `paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        };
        f.write_str(s)
    }
}

/// What the runtime remembers of a container between commands.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContainerState {
    pub id: String,
    /// The container's first process, in the runtime's pid namespace; 0 until `create` has it
    /// ready (a `create` that died before leaves a stopped container whose cgroup holds the rest).
    pub pid: i32,
    /// Its start time in clock ticks (/proc/PID/stat field 22), so a reused pid is not mistaken for it.
    pub pid_start: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    pub created: String,
    #[serde(default)]
    pub annotations: HashMap<String, String>,
    pub cgroup: hull_cgroups::Cgroup,
    /// The config listed no mount namespace: the rootfs mounts live in the caller's, and
    /// `delete` takes them out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shared_rootfs: Option<crate::rootfs::SharedRootfs>,
}

/// The `--root` directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
}

/// The directory of compiled seccomp filters in a state root. '@' is outside the id rule, so
/// no container's directory can have this name.
const SECCOMP_CACHE: &str = "@seccomp-cache";

impl Store {
    /// Compiled seccomp filters kept between runs (security::seccomp_cache).
    pub fn seccomp_cache(&self) -> PathBuf {
        self.root.join(SECCOMP_CACHE)
    }

    pub fn new(root: &Path) -> Store {
        Store {
            root: root.to_path_buf(),
        }
    }

    /// Claims `id` for a new container. The directory is made under a private name with its
    /// lock file, locked, and renamed into place (the rename is the atomic test for a
    /// duplicate): whoever sees the directory finds its lock already held, and waits until the
    /// create has finished, failed or died. (A lock file made in place could be taken between
    /// its creation and create's flock by a `delete` sent right after `create`: that delete
    /// found no state and removed the directory of a container still being made.)
    pub fn create(&self, id: &str) -> Result<ContainerDir, StateError> {
        validate_id(id)?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.root)
            .map_err(io_err(&self.root))?;
        let path = self.root.join(id);
        if path.exists() {
            return Err(StateError::Exists);
        }
        // `ids` never lists it: the state is written only once it has its final name.
        let private = self
            .root
            .join(format!(".{}.{id}{CLAIM_SUFFIX}", std::process::id()));
        std::fs::DirBuilder::new()
            .mode(0o711)
            .create(&private)
            .map_err(io_err(&private))?;
        let claimed = ContainerDir::locked(private.clone(), true).and_then(|mut dir| {
            rename_new(&private, &path)?;
            dir.path = path;
            Ok(dir)
        });
        if claimed.is_err() {
            let _ = std::fs::remove_dir_all(&private);
        }
        claimed
    }

    /// An existing container, locked for the caller's command. A directory has its lock file
    /// from before it has its name (`create` makes it in the claim); one without it is being
    /// removed, or was left empty by a remove cut short (cleared here).
    pub fn open(&self, id: &str) -> Result<ContainerDir, StateError> {
        validate_id(id)?;
        let path = self.root.join(id);
        if !path.is_dir() {
            return Err(StateError::NotExist);
        }
        ContainerDir::locked(path.clone(), false).inspect_err(|e| {
            if matches!(e, StateError::NotExist) {
                // Only an empty one goes: a remove still at work has files left.
                let _ = std::fs::remove_dir(&path);
            }
        })
    }

    /// Removes what creates of `id` killed before they renamed their directory into place left
    /// (a private directory whose lock nobody holds); nothing else of them exists yet.
    pub fn remove_abandoned_claims(&self, id: &str) -> Result<(), StateError> {
        validate_id(id)?;
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return Ok(());
        };
        let suffix = format!(".{id}{CLAIM_SUFFIX}");
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name();
            let is_claim = name.to_str().is_some_and(|n| {
                n.strip_suffix(&suffix)
                    .and_then(|pid| pid.strip_prefix('.'))
                    .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
            });
            if !is_claim {
                continue;
            }
            let path = entry.path();
            let Ok(file) = File::open(path.join(LOCK_FILE)) else {
                continue;
            };
            // Held: its create is alive, and will rename or remove it.
            if let Ok(lock) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                let _ = std::fs::remove_dir_all(&path);
                drop(lock);
            }
        }
        Ok(())
    }

    /// Ids of every container under the root, sorted.
    pub fn ids(&self) -> Result<Vec<String>, StateError> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => return Err(io_err(&self.root)(err)),
        };
        let mut ids: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|e| e.path().join(STATE_FILE).exists())
            .filter_map(|e| e.file_name().into_string().ok())
            .collect();
        ids.sort();
        Ok(ids)
    }
}

/// Renames directory `from` to `to`, which must not exist: Exists if it does.
fn rename_new(from: &Path, to: &Path) -> Result<(), StateError> {
    use nix::fcntl::{renameat2, RenameFlags, AT_FDCWD};
    match renameat2(AT_FDCWD, from, AT_FDCWD, to, RenameFlags::RENAME_NOREPLACE) {
        Ok(()) => Ok(()),
        Err(nix::errno::Errno::EEXIST) => Err(StateError::Exists),
        // A file system without RENAME_NOREPLACE: rename(2) refuses a non-empty directory (every
        // container's has its lock file), and nothing else is ever created under the root.
        Err(nix::errno::Errno::EINVAL) => match std::fs::rename(from, to) {
            Ok(()) => Ok(()),
            Err(err) if matches!(err.raw_os_error(), Some(libc::EEXIST | libc::ENOTEMPTY)) => {
                Err(StateError::Exists)
            }
            Err(err) => Err(io_err(to)(err)),
        },
        Err(err) => Err(io_err(to)(err.into())),
    }
}

/// runc's rule: letters, digits, `_ + - .`, and not `.` or `..`.
pub fn validate_id(id: &str) -> Result<(), StateError> {
    Ok(hull_sys::id::validate_id(id)?)
}

/// One container's directory, held under its exclusive lock for the life of this value.
pub struct ContainerDir {
    path: PathBuf,
    lock: Flock<File>,
}

impl ContainerDir {
    /// The seccomp filter cache of the store this directory is in.
    pub fn seccomp_cache(&self) -> Option<PathBuf> {
        Some(self.path.parent()?.join(SECCOMP_CACHE))
    }

    /// `path` under its lock file's lock; `create`: make the lock file (only in a claim, which
    /// nothing else can reach yet).
    fn locked(path: PathBuf, create: bool) -> Result<ContainerDir, StateError> {
        let lock_path = path.join(LOCK_FILE);
        let lock = OpenOptions::new()
            .create(create)
            .truncate(false)
            .write(true)
            .custom_flags(libc::O_CLOEXEC)
            .mode(0o600)
            .open(&lock_path)
            .map_err(|err| match err.kind() {
                // Removed by a `delete` since the caller looked.
                std::io::ErrorKind::NotFound => StateError::NotExist,
                _ => io_err(&lock_path)(err),
            })?;
        let mut file = lock;
        let lock = loop {
            match Flock::lock(file, FlockArg::LockExclusive) {
                Err((f, nix::errno::Errno::EINTR)) => file = f,
                Err((_, err)) => return Err(io_err(&lock_path)(err.into())),
                Ok(lock) => break lock,
            }
        };
        // A delete that raced us may have removed the directory while we waited for the lock.
        if !path.exists() {
            return Err(StateError::NotExist);
        }
        Ok(ContainerDir { path, lock })
    }

    /// Runs `f` without the lock, and takes it again after: for a wait that only another
    /// command on the container can end (an exec into a paused container waits for `resume`).
    pub fn without_lock<T>(&self, f: impl FnOnce() -> T) -> Result<T, StateError> {
        let lock_path = self.path.join(LOCK_FILE);
        #[allow(deprecated)] // Flock has relock but no unlock that keeps the file
        nix::fcntl::flock(self.lock.as_raw_fd(), FlockArg::Unlock)
            .map_err(|err| io_err(&lock_path)(err.into()))?;
        let result = f();
        loop {
            match self.lock.relock(FlockArg::LockExclusive) {
                Err(nix::errno::Errno::EINTR) => continue,
                Err(err) => return Err(io_err(&lock_path)(err.into())),
                Ok(()) => return Ok(result),
            }
        }
    }

    pub fn lock_fd(&self) -> i32 {
        self.lock.as_raw_fd()
    }

    pub fn fifo_path(&self) -> PathBuf {
        self.path.join(EXEC_FIFO)
    }

    pub fn load(&self) -> Result<ContainerState, StateError> {
        let path = self.path.join(STATE_FILE);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(StateError::NotExist)
            }
            Err(err) => return Err(io_err(&path)(err)),
        };
        serde_json::from_slice(&bytes).map_err(|source| StateError::Corrupt { path, source })
    }

    pub fn save(&self, state: &ContainerState) -> Result<(), StateError> {
        let bytes = serde_json::to_vec(state).map_err(encode("container state"))?;
        write_atomic(&self.path.join(STATE_FILE), &bytes, 0o600)
    }

    pub fn save_config(&self, spec: &Spec) -> Result<(), StateError> {
        // Through a Value: the Spec's Serialize is instantiated once in the binary (see spec.rs).
        let value = serde_json::to_value(spec).map_err(encode("config"))?;
        let bytes = serde_json::to_vec(&value).map_err(encode("config"))?;
        write_atomic(&self.path.join(CONFIG_FILE), &bytes, 0o600)
    }

    /// The bundle's config.json as read (and validated) by create: the same Spec as
    /// [`ContainerDir::save_config`] of it would store, without serializing it again.
    pub fn save_config_bytes(&self, bytes: &[u8]) -> Result<(), StateError> {
        write_atomic(&self.path.join(CONFIG_FILE), bytes, 0o600)
    }

    /// Links `bundle_config` as the stored config.json (see `CreateOptions::link_config`).
    pub fn link_config(&self, bundle_config: &Path) -> std::io::Result<()> {
        std::fs::hard_link(bundle_config, self.path.join(CONFIG_FILE))
    }

    pub fn load_config(&self) -> Result<Spec, StateError> {
        let path = self.path.join(CONFIG_FILE);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        crate::spec::decode(&bytes).map_err(|source| StateError::Corrupt { path, source })
    }

    /// The parts of the stored config.json the container's lifecycle needs (see `Lifecycle`).
    pub(crate) fn load_lifecycle(&self) -> Result<crate::spec::Lifecycle, StateError> {
        let path = self.path.join(CONFIG_FILE);
        let bytes = std::fs::read(&path).map_err(io_err(&path))?;
        crate::spec::Lifecycle::decode(&bytes)
            .map_err(|source| StateError::Corrupt { path, source })
    }

    /// Removes the directory: everything but the lock file, then the lock file, then the
    /// directory. A command that opens the container meanwhile either opened the lock file
    /// before it went (it then finds no directory once it has the lock) or finds none: it never
    /// makes one again in a directory being removed. A remove cut short after the lock file
    /// leaves an empty directory, which `open` clears.
    pub fn remove(self) -> Result<(), StateError> {
        let err = |e| io_err(&self.path)(e);
        for entry in std::fs::read_dir(&self.path).map_err(&err)? {
            let entry = entry.map_err(&err)?;
            if entry.file_name() == LOCK_FILE {
                continue;
            }
            match hull_sys::remove::remove_entry(&entry.path()) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
                _ => {}
            }
        }
        match std::fs::remove_file(self.path.join(LOCK_FILE)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
            _ => {}
        }
        // Gone already: an `open` that found it empty cleared it.
        match std::fs::remove_dir(&self.path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(err(e)),
            _ => {}
        }
        drop(self.lock);
        Ok(())
    }
}

/// Writes `path` so that readers see the old content or the new, never a part: temp file + rename.
pub fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> Result<(), StateError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .custom_flags(libc::O_CLOEXEC)
        .mode(mode)
        .open(&tmp)
        .map_err(io_err(&tmp))?;
    file.write_all(bytes).map_err(io_err(&tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(|err| {
        let _ = std::fs::remove_file(&tmp);
        io_err(path)(err)
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    /// An open racing a remove never makes the lock file again in the directory being removed
    /// (the remove then failed with ENOTEMPTY and left the container's state behind).
    #[test]
    fn opens_racing_removes_never_leave_a_directory() {
        let root = std::env::temp_dir().join(format!("hull-state-race-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Arc::new(Store::new(&root));
        let done = Arc::new(AtomicBool::new(false));
        let opener = {
            let (store, done) = (store.clone(), done.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    if let Ok(dir) = store.open("c1") {
                        drop(dir);
                    }
                }
            })
        };
        for _ in 0..2000 {
            let dir = store.create("c1").expect("create");
            dir.save_config_bytes(b"{}").expect("config");
            dir.remove().expect("remove");
        }
        done.store(true, Ordering::Relaxed);
        opener.join().expect("opener");
        // A remove cut short after its lock file: the next open clears the empty directory.
        std::fs::create_dir(root.join("c2")).expect("leftover");
        assert!(matches!(store.open("c2"), Err(StateError::NotExist)));
        let left: Vec<_> = std::fs::read_dir(&root)
            .expect("root")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .filter(|n| n != SECCOMP_CACHE)
            .collect();
        let _ = std::fs::remove_dir_all(&root);
        assert!(left.is_empty(), "{left:?}");
    }

    /// Whoever sees a container's directory finds its lock held by the create that made it:
    /// a `delete` that could take it first found no state and removed a container being made.
    #[test]
    fn a_claimed_directory_is_never_seen_unlocked() {
        let root = std::env::temp_dir().join(format!("hull-state-claim-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::new(&root);
        let lock = root.join("c1").join(LOCK_FILE);
        let done = Arc::new(AtomicBool::new(false));
        let unlocked = Arc::new(AtomicUsize::new(0));
        let held = Arc::new(AtomicUsize::new(0));
        let watcher = {
            let (done, unlocked, held, lock) =
                (done.clone(), unlocked.clone(), held.clone(), lock.clone());
            std::thread::spawn(move || {
                while !done.load(Ordering::Relaxed) {
                    let Ok(file) = File::open(&lock) else {
                        continue;
                    };
                    if let Ok(taken) = Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                        // Seen unlocked: unless its create already removed it.
                        if lock.exists() {
                            unlocked.fetch_add(1, Ordering::Relaxed);
                        }
                        drop(taken);
                    } else {
                        held.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        };
        for _ in 0..2000 {
            let dir = store.create("c1").expect("create");
            dir.remove().expect("remove");
        }
        done.store(true, Ordering::Relaxed);
        watcher.join().expect("watcher");
        let left: Vec<_> = std::fs::read_dir(&root).expect("root").collect();
        let _ = std::fs::remove_dir_all(&root);
        assert_eq!(unlocked.load(Ordering::Relaxed), 0, "seen unlocked");
        assert!(
            held.load(Ordering::Relaxed) > 0,
            "the watcher never saw a claim"
        );
        assert!(left.is_empty(), "left in the root: {left:?}");
    }

    #[test]
    fn a_taken_id_is_refused_and_an_abandoned_claim_is_removed() {
        let root = std::env::temp_dir().join(format!("hull-state-dup-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        let store = Store::new(&root);
        let first = store.create("c1").expect("create");
        assert!(matches!(store.create("c1"), Err(StateError::Exists)));
        drop(first);
        // A create killed before its rename left this; one alive holds its lock.
        let dead = root.join(format!(".4194305.c1{CLAIM_SUFFIX}"));
        std::fs::create_dir(&dead).expect("mkdir");
        std::fs::write(dead.join(LOCK_FILE), "").expect("lock file");
        let alive = root.join(format!(".4194306.c1{CLAIM_SUFFIX}"));
        std::fs::create_dir(&alive).expect("mkdir");
        let held = ContainerDir::locked(alive.clone(), true).expect("lock");
        let other = root.join(format!(".4194307.c10{CLAIM_SUFFIX}"));
        std::fs::create_dir(&other).expect("mkdir");
        std::fs::write(other.join(LOCK_FILE), "").expect("lock file");
        store.remove_abandoned_claims("c1").expect("sweep");
        assert!(!dead.exists());
        assert!(alive.exists(), "a live create's claim was removed");
        assert!(other.exists(), "another id's claim was removed");
        drop(held);
        let _ = std::fs::remove_dir_all(&root);
    }
}
