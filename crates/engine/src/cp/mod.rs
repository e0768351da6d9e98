//! `cp`: files between the host and a container, both ways, as docker copies them (its rules
//! for trailing `/` and `/.`, a tar stream for `-`, `-a` keeping owners, `-L` following a
//! source symlink).
//!
//! Every path inside the container is resolved with openat2 `RESOLVE_IN_ROOT` from a
//! descriptor of the container's root, so no symlink of the container (to `/`, to `..`) leads
//! to the host's files. A running container's root is `/proc/PID/root`: the view of its mount
//! namespace, so its volumes and bind mounts are copied from and into as docker does. A
//! stopped one gets an overlay of its image layers and upper dir mounted for the copy alone
//! and never attached anywhere (its descriptor is the only reference), with its volumes and
//! bind mounts attached inside that detached tree ([`binds`]), so nothing is left mounted
//! however `cp` ends. Such a copy holds the container's overlay lock ([`overlay_lock`]), which
//! its monitor takes to mount the container's own overlay: two overlays over one upper dir do
//! not see each other's changes (a name one has looked up stays missing in it), so a start
//! waits for the copy, and a copy that finds the container starting waits until it runs.
//! Both directions go through one tar stream: hull-image's archiver writes it from descriptors,
//! hull-image's unpacker (the one layers go through) writes it out, confined to its target.

mod binds;
mod plan;

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hull_runtime::Runtime;
use hull_sys::resolve::open_in_root;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg, OFlag};
use nix::sys::stat::Mode;

use crate::store::{Record, State};
use crate::{paths, Engine, EngineError};
use hull_image::archive::TarWriter;
use plan::{Dest, Source};

/// How `cp` copies.
#[derive(Debug, Clone, Copy, Default)]
pub struct CopyOptions {
    /// `-a`: keep the source's uid/gid (else the copy belongs to root in the container, to the
    /// calling user on the host).
    pub archive: bool,
    /// `-L`: follow a symlink that the source path names.
    pub follow: bool,
}

/// One end of a copy on the host's side.
#[derive(Debug)]
pub enum HostEnd<'a> {
    Path(&'a Path),
    /// `-`: a tar stream (stdin into a container, stdout out of one).
    Stream,
}

/// The file system a path of a copy is looked up in.
enum Tree {
    /// The host: paths resolve as the user typed them.
    Host,
    /// A container's root: paths resolve inside it, `/` and `..` included.
    Root(OwnedFd),
}

const DIR: OFlag = OFlag::O_RDONLY.union(OFlag::O_DIRECTORY);

impl Tree {
    fn open(&self, path: &str, flags: OFlag) -> nix::Result<OwnedFd> {
        match self {
            Tree::Host => nix::fcntl::open(path, flags | OFlag::O_CLOEXEC, Mode::empty()),
            Tree::Root(root) => {
                let rel = path.trim_start_matches('/');
                open_in_root(root.as_fd(), if rel.is_empty() { "." } else { rel }, flags)
            }
        }
    }

    /// What `path` is (its symlink's target's kind only with `follow`); `None` when missing.
    fn stat(&self, path: &str, follow: bool) -> nix::Result<Option<(OwnedFd, bool)>> {
        let flags = if follow {
            OFlag::O_PATH
        } else {
            OFlag::O_PATH | OFlag::O_NOFOLLOW
        };
        match self.open(path, flags) {
            Ok(fd) => {
                let st = nix::sys::stat::fstat(fd.as_fd())?;
                let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
                Ok(Some((fd, is_dir)))
            }
            Err(Errno::ENOENT) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl Engine {
    /// `hull cp SRC CTR:PATH` (`SRC` a host path, or a tar stream read from `stdin`); returns a
    /// warning when the copy could not see all of the container (a stopped one's volumes on an
    /// older kernel).
    pub fn copy_into(
        &self,
        reference: &str,
        ctr_path: &str,
        src: &HostEnd<'_>,
        opts: CopyOptions,
        stdin: &mut (dyn Read + Send),
    ) -> Result<Option<String>, EngineError> {
        let (record, root) = ContainerRoot::open(self, reference)?;
        let ctr = Tree::Root(root.fd.try_clone().map_err(EngineError::io("dup"))?);
        let ctr_path = absolute(ctr_path);
        let owner = (!opts.archive).then_some((0, 0));
        match src {
            HostEnd::Path(src) => {
                let src = src.to_string_lossy();
                let (top, source) = source(&Tree::Host, &src, opts.follow)
                    .map_err(|e| EngineError::Invalid(format!("lstat {src}: {}", e.desc())))?
                    .ok_or_else(|| {
                        EngineError::Invalid(format!("lstat {src}: no such file or directory"))
                    })?;
                let into = destination(&ctr, &source, &src, &ctr_path)
                    .map_err(|e| e.in_container(&ctr_path, &record))?;
                stream(&top, into.1.as_deref(), into.0, owner)?;
            }
            HostEnd::Stream => {
                let dir = ctr
                    .open(&ctr_path, DIR)
                    .map_err(|e| missing(e, &ctr_path, &record))?;
                let (input, _) = hull_image::unpack::decompress(stdin)
                    .map_err(EngineError::io("reading the tar stream"))?;
                unpack(input, dir, owner)?;
            }
        }
        Ok(root.warning)
    }

    /// `hull cp CTR:PATH DEST` (`DEST` a host path, or a tar stream written to `stdout`).
    pub fn copy_out(
        &self,
        reference: &str,
        ctr_path: &str,
        dest: &HostEnd<'_>,
        opts: CopyOptions,
        stdout: &mut dyn Write,
    ) -> Result<Option<String>, EngineError> {
        let (record, root) = ContainerRoot::open(self, reference)?;
        let ctr = Tree::Root(root.fd.try_clone().map_err(EngineError::io("dup"))?);
        let ctr_path = absolute(ctr_path);
        let (top, source) = source(&ctr, &ctr_path, opts.follow)
            .map_err(|e| missing(e, &ctr_path, &record))?
            .ok_or_else(|| missing(Errno::ENOENT, &ctr_path, &record))?;
        match dest {
            HostEnd::Path(dest) => {
                let dest = dest.to_string_lossy();
                let into = destination(&Tree::Host, &source, &ctr_path, &dest)
                    .map_err(|e| e.on_host(&dest))?;
                let owner = (!opts.archive).then(|| {
                    (
                        nix::unistd::geteuid().as_raw(),
                        nix::unistd::getegid().as_raw(),
                    )
                });
                stream(&top, into.1.as_deref(), into.0, owner)?;
            }
            HostEnd::Stream => {
                let name = (!source.contents_only).then(|| PathBuf::from(&source.base));
                let mut w = TarWriter::new(stdout);
                w.append_top(&top, name.as_deref())
                    .and_then(|()| w.finish().map(drop))
                    .map_err(EngineError::io(format!("archiving {ctr_path}")))?;
            }
        }
        Ok(root.warning)
    }
}

/// The source at `path` (followed when `-L`, or spelled as a directory): its descriptor and
/// what docker's rules need to know of it.
fn source(tree: &Tree, path: &str, follow: bool) -> nix::Result<Option<(OwnedFd, Source)>> {
    let follow = follow || path.ends_with('/') || path.ends_with("/.");
    Ok(tree
        .stat(path, follow)?
        .map(|(fd, is_dir)| (fd, Source::new(path, is_dir))))
}

/// The directory to unpack into and the name of the copy's top entry, per docker's rules.
fn destination(
    tree: &Tree,
    src: &Source,
    src_path: &str,
    dest_path: &str,
) -> Result<(OwnedFd, Option<PathBuf>), Failure> {
    // A destination that is a symlink to a directory is that directory, as docker has it.
    let dest = match tree.stat(dest_path, true)? {
        None => Dest::Missing,
        Some((_, true)) => Dest::Dir,
        Some((_, false)) => Dest::File,
    };
    let plan = plan::plan(src, src_path, dest_path, dest).map_err(Failure::Rule)?;
    let dir = tree
        .open(&plan.dir, DIR)
        .map_err(|e| Failure::At(plan.dir, e))?;
    Ok((dir, plan.name.map(PathBuf::from)))
}

/// Why a copy cannot go where it was asked to.
enum Failure {
    /// A path of the copy cannot be looked up.
    Sys(Errno),
    /// The parent directory (docker's rules name it) cannot be opened.
    At(String, Errno),
    /// docker's rules refuse the copy (a directory onto a file, a missing `dir/`).
    Rule(String),
}

impl From<Errno> for Failure {
    fn from(e: Errno) -> Self {
        Failure::Sys(e)
    }
}

impl Failure {
    /// As the error of a copy into container `record` at `path`.
    fn in_container(self, path: &str, record: &Record) -> EngineError {
        match self {
            Failure::Sys(e) | Failure::At(_, e) => missing(e, path, record),
            Failure::Rule(r) => EngineError::Invalid(r),
        }
    }

    /// As the error of a copy to the host's `path`.
    fn on_host(self, path: &str) -> EngineError {
        match self {
            Failure::Sys(e) => EngineError::Invalid(format!("{path}: {}", e.desc())),
            Failure::At(dir, e) => EngineError::Invalid(format!("{dir}: {}", e.desc())),
            Failure::Rule(r) => EngineError::Invalid(r),
        }
    }
}

/// Archives `top` (named `name`) and unpacks the stream into `dir` at the same time.
fn stream(
    top: &OwnedFd,
    name: Option<&Path>,
    dir: OwnedFd,
    owner: Option<(u32, u32)>,
) -> Result<(), EngineError> {
    let (reader, writer) = std::io::pipe().map_err(EngineError::io("pipe"))?;
    std::thread::scope(|s| {
        let archived = s.spawn(move || {
            let mut w = TarWriter::new(writer);
            w.append_top(top, name)?;
            w.finish().map(drop)
        });
        let unpacked = unpack(reader, dir, owner);
        let archived = archived
            .join()
            .unwrap_or_else(|_| Err(std::io::Error::other("the archiving thread panicked")));
        // The reader's error says why; a writer that lost its reader only saw a broken pipe.
        unpacked?;
        archived.map_err(EngineError::io("reading the source"))
    })
}

fn unpack(input: impl Read, dir: OwnedFd, owner: Option<(u32, u32)>) -> Result<(), EngineError> {
    let opts = hull_image::unpack::UnpackOptions {
        whiteouts: false,
        owner,
        ..Default::default()
    };
    hull_image::unpack::unpack_at(input, dir, &opts)
        .map(drop)
        .map_err(|e| match e {
            hull_image::unpack::UnpackError::Entry { entry, err } => {
                EngineError::Invalid(format!("copying {entry}: {err}"))
            }
            e => EngineError::Invalid(e.to_string()),
        })
}

/// Container paths are relative to its root, as docker's.
fn absolute(path: &str) -> String {
    if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{path}")
    }
}

/// A container path that cannot be looked up, as docker words it when it is missing.
fn missing(e: Errno, path: &str, record: &Record) -> EngineError {
    if e == Errno::ENOENT || e == Errno::ENOTDIR {
        EngineError::Invalid(format!(
            "Could not find the file {path} in container {}",
            record.name
        ))
    } else {
        EngineError::Invalid(format!("{path} in container {}: {}", record.name, e.desc()))
    }
}

/// How long a copy waits for a container that is starting to run.
const STARTING: Duration = Duration::from_secs(30);

/// The lock of container dir `dir`'s overlay, held exclusively by whoever mounts an overlay of
/// its upper dir: `cp` of a stopped container for its copy, the monitor while it mounts the
/// container's root. (An flock of the directory itself: nothing to create or remove.)
pub(crate) fn overlay_lock(dir: &Path) -> Result<Flock<File>, EngineError> {
    let file = File::open(dir).map_err(EngineError::io(format!("opening {}", dir.display())))?;
    Flock::lock(file, FlockArg::LockExclusive)
        .map_err(|(_, e)| EngineError::sys(format!("locking {}", dir.display()))(e))
}

/// A descriptor of a container's root for the length of a copy.
struct ContainerRoot {
    fd: OwnedFd,
    /// What of the container this view lacks.
    warning: Option<String>,
    /// A stopped container's overlay lock: no start mounts its root while this copies.
    _lock: Option<Flock<File>>,
}

impl ContainerRoot {
    /// Container `reference` and its root: a running one's, or (under its overlay lock) a
    /// stopped one's. One that is starting is waited for.
    fn open(engine: &Engine, reference: &str) -> Result<(Record, ContainerRoot), EngineError> {
        let deadline = Instant::now() + STARTING;
        loop {
            let record = engine.find(reference)?;
            crate::vm::control::refuse_vm(&record, "cp")?;
            if record.state == State::Running {
                let root = Self::running(&engine.root, &record)?;
                return Ok((record, root));
            }
            let lock = overlay_lock(&paths::container_dir(&engine.root, &record.id))?;
            // What it is now that no start can mount its root.
            let record = engine.find(&record.id)?;
            match record.state {
                State::Created | State::Exited => {
                    let root = Self::stopped(&engine.root, &record, lock)?;
                    return Ok((record, root));
                }
                State::Starting | State::Running if Instant::now() < deadline => {
                    drop(lock);
                    std::thread::sleep(Duration::from_millis(10));
                }
                state => {
                    return Err(EngineError::BadState {
                        id: record.id.clone(),
                        state: state.as_str().to_string(),
                        op: "copy files of",
                    })
                }
            }
        }
    }

    /// The root its process sees, through /proc/PID/root (checked to be this container's
    /// process, so a recycled pid cannot hand another root over).
    fn running(root: &Path, record: &Record) -> Result<ContainerRoot, EngineError> {
        let runtime = Runtime::new(paths::runtime_root(root));
        let pid = runtime.open(&record.id)?.pid();
        let proc = nix::fcntl::open(
            format!("/proc/{pid}").as_str(),
            DIR | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|_| EngineError::NotRunning(record.id.clone()))?;
        let fd = nix::fcntl::openat(proc.as_fd(), "root", DIR | OFlag::O_CLOEXEC, Mode::empty())
            .map_err(EngineError::sys(format!("opening /proc/{pid}/root")))?;
        // The /proc/PID descriptor pins that process: if it is still the container's now, the
        // root opened through it was.
        if runtime.open(&record.id).map(|c| c.pid()).ok() != Some(pid)
            || nix::fcntl::openat(proc.as_fd(), "stat", OFlag::O_RDONLY, Mode::empty()).is_err()
        {
            return Err(EngineError::NotRunning(record.id.clone()));
        }
        Ok(ContainerRoot {
            fd,
            warning: None,
            _lock: None,
        })
    }

    /// An overlay of the image's layers and the container's upper dir, mounted only for us.
    fn stopped(
        root: &Path,
        record: &Record,
        lock: Flock<File>,
    ) -> Result<ContainerRoot, EngineError> {
        let rootfs = hull_image::ImageStore::open(root)?.rootfs_for(&record.settings.manifest)?;
        let dir = paths::container_dir(root, &record.id);
        let (upper, work, merged) = (dir.join("upper"), dir.join("work"), dir.join("merged"));
        for d in [&upper, &work, &merged] {
            std::fs::create_dir_all(d)
                .map_err(EngineError::io(format!("creating {}", d.display())))?;
        }
        let fd = hull_image::overlay::mount_detached(&hull_image::overlay::Overlay {
            lowers: crate::mount_targets::under(root, &rootfs.lowers)?,
            upper: Some((upper, work)),
            source: format!("hull-{}", record.id),
            target: merged,
            readonly: false,
            inert: true,
            volatile: false,
        })?;
        let warning = binds::attach(fd.as_fd(), &dir.join("config.json"))?;
        Ok(ContainerRoot {
            fd,
            warning,
            _lock: Some(lock),
        })
    }
}
