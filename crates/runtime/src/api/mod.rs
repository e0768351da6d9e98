//! The library's facade, all that its callers (the hull-runtime binary, the engine's
//! per-container monitor) use: a [`Runtime`] is one state directory (runc's `--root`); it
//! creates containers from OCI bundles with the stdio the caller hands in, runs them to exit,
//! and opens existing ones as [`Container`]s to start, signal, exec in, pause, observe and delete.
//!
//! Creating a container and exec clone the calling process as fork(2) does, which is only sound
//! when it has one thread: the facade checks and refuses otherwise ([`Error::MultiThreaded`]).

mod container;
mod error;
mod info;

use std::path::Path;
use std::sync::Arc;

use nix::sys::signal::SigSet;
use nix::unistd::Pid;
use oci_spec::runtime::LinuxResources;

pub use container::{Container, Created, Watch};
pub use error::Error;
pub use info::{features, override_user, write_default_spec};

use crate::container::ContainerError;
use crate::process::foreground::Foreground;
use crate::process::{CreateOptions, Overlap};
use crate::state::{StateError, Store};

/// The containers under one state directory.
#[derive(Debug)]
pub struct Runtime {
    store: Store,
    warnings: Warnings,
}

/// Where a runtime's warnings go (see [`Runtime::with_warnings`]); nowhere by default.
#[derive(Clone, Default)]
pub(crate) struct Warnings(Option<Arc<Sink>>);

type Sink = dyn Fn(&str) + Send + Sync;

impl Warnings {
    pub(crate) fn emit(&self, warning: &str) {
        if let Some(sink) = &self.0 {
            sink(warning);
        }
    }
}

impl std::fmt::Debug for Warnings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.is_some() {
            "Warnings(sink)"
        } else {
            "Warnings(none)"
        })
    }
}

impl Runtime {
    /// The state directory `root` (made on the first create).
    pub fn new(root: impl AsRef<Path>) -> Runtime {
        Runtime {
            store: Store::new(root.as_ref()),
            warnings: Warnings::default(),
        }
    }

    /// Compiles an OCI `linux.seccomp` object (JSON) for a process another kernel runs (a
    /// microVM's guest agent loads it): seccomp(2) flags and the BPF program, from the same
    /// compiler and cache as this runtime's containers.
    pub fn compile_seccomp(
        &self,
        seccomp: &serde_json::Value,
    ) -> Result<(u32, Vec<libc::sock_filter>), Error> {
        let s: oci_spec::runtime::LinuxSeccomp =
            serde_json::from_value(seccomp.clone()).map_err(|e| {
                crate::security::SecurityError::SeccompCompile(format!(
                    "not an OCI seccomp object: {e}"
                ))
            })?;
        let cache = self.store.seccomp_cache();
        Ok(crate::security::compile_elsewhere(&s, Some(&cache))?)
    }

    /// Sends this runtime's warnings, and those of the containers it opens, to `sink`: what the
    /// runtime spec makes a warning rather than an error, the lifecycle going on (a failing
    /// poststart or poststop hook, including the poststop hooks run after a failed create).
    /// Without a sink they are dropped. (What a config asks for that is skipped comes with
    /// [`Created::warnings`] and [`Runtime::run`]'s `on_warning`.)
    pub fn with_warnings(mut self, sink: impl Fn(&str) + Send + Sync + 'static) -> Runtime {
        self.warnings = Warnings(Some(Arc::new(sink)));
        self
    }

    fn container(&self, inner: crate::container::Container) -> Container {
        Container {
            inner,
            warnings: self.warnings.clone(),
        }
    }

    /// Creates a container whose process waits for [`Container::start`].
    pub fn create(&self, opts: CreateOptions) -> Result<Created, Error> {
        self.create_alongside(opts, &mut |_| Ok(()))
    }

    /// [`Runtime::create`], running `alongside` with the container process's pid while that
    /// process sets up its root file system (it is in its namespaces and cgroups by then): an
    /// engine's preparation for `start` (the network of the namespace, files the container's
    /// mounts show) overlaps the setup instead of following the create. An error it returns
    /// fails the create, which is then undone as after any failure.
    pub fn create_alongside(
        &self,
        opts: CreateOptions,
        alongside: &mut dyn FnMut(i32) -> Result<(), String>,
    ) -> Result<Created, Error> {
        self.create_overlapped(
            opts,
            Overlap {
                before_clone: &mut || Ok(()),
                alongside,
            },
        )
    }

    /// [`Runtime::create`] with the caller's work at two points of it ([`Overlap`]): before the
    /// process exists (what the create waits for, such as the root file system another
    /// process mounts meanwhile), and alongside the process's setup.
    pub fn create_overlapped(
        &self,
        opts: CreateOptions,
        overlap: Overlap<'_>,
    ) -> Result<Created, Error> {
        single_threaded("create a container")?;
        let sigmask = SigSet::thread_get_mask().unwrap_or_else(|_| SigSet::empty());
        self.create_with(opts, sigmask, overlap)
    }

    fn create_with(
        &self,
        opts: CreateOptions,
        sigmask: SigSet,
        overlap: Overlap<'_>,
    ) -> Result<Created, Error> {
        let created = crate::process::create::create(
            &self.store,
            opts,
            sigmask,
            &mut |warning| self.warnings.emit(warning),
            overlap,
        )?;
        Ok(Created {
            container: self.container(
                crate::container::Container::from_parts(created.dir, created.state)
                    .with_config(created.spec)
                    .with_start_sent(created.started),
            ),
            console: created.console,
            warnings: created.warnings,
        })
    }

    /// runc's `run` in the foreground: create, start, forward the caller's signals to the
    /// process and relay a returned terminal to the caller's stdin and stdout until it exits,
    /// then delete the container unless `keep`. The process's exit status (128+N for a signal).
    /// `on_warning` hears what the config asked for that was skipped, once it is created.
    /// The caller becomes a child subreaper for good (a process in a joined pid namespace is a
    /// grandchild); its signal mask is restored on return.
    pub fn run(
        &self,
        opts: CreateOptions,
        keep: bool,
        on_warning: &mut dyn FnMut(&str),
    ) -> Result<i32, Error> {
        single_threaded("create a container")?;
        // The process may be a grandchild (joined pid namespace): adopt it to be able to wait.
        nix::sys::prctl::set_child_subreaper(true).map_err(Error::Subreaper)?;
        let foreground = Foreground::new()?;
        let overlap = Overlap {
            before_clone: &mut || Ok(()),
            alongside: &mut |_| Ok(()),
        };
        let created = self.create_with(opts, foreground.original_mask, overlap)?;
        for warning in &created.warnings {
            on_warning(warning);
        }
        let container = created.container;
        let pid = Pid::from_raw(container.pid());
        let id = container.id().to_string();
        let started = container.start();
        // Other commands (state, kill, exec...) must reach the container while it runs.
        drop(container);
        let result = match started {
            Ok(()) => foreground.wait(pid, created.console).map_err(Error::from),
            Err(err) => Err(err),
        };
        if !keep {
            if let Ok(container) = self.open(id.as_str()) {
                container.delete(true)?;
            }
        }
        result
    }

    /// An existing container, locked for the caller.
    pub fn open(&self, id: &str) -> Result<Container, Error> {
        Ok(self.container(crate::container::Container::load(&self.store, id)?))
    }

    /// Every container under the root, sorted by id, each locked. One deleted meanwhile is
    /// left out.
    pub fn list(&self) -> Result<Vec<Container>, Error> {
        Ok(self
            .store
            .ids()?
            .iter()
            .filter_map(|id| self.open(id).ok())
            .collect())
    }

    /// Deletes container `id` (see [`Container::delete`]). With `force`, one that does not
    /// exist is no error, and the directory of one whose runtime died before it recorded
    /// anything is removed. One being created is waited for (its create holds its lock).
    pub fn delete(&self, id: &str, force: bool) -> Result<(), Error> {
        let dir = match self.store.open(id) {
            Ok(dir) => dir,
            Err(StateError::NotExist) if force => {
                return Ok(self.store.remove_abandoned_claims(id)?)
            }
            Err(err) => return Err(err.into()),
        };
        // Under the lock: a live create holds it until its state is recorded, so a directory
        // without one is a create that died first. Nothing else of it exists yet.
        match dir.load() {
            Ok(state) => self
                .container(crate::container::Container::from_parts(dir, state))
                .delete(force),
            Err(StateError::NotExist) if force => Ok(dir.remove()?),
            Err(err) => Err(ContainerError::from(err).into()),
        }
    }
}

/// Reads now what the next create of this process reads of the host and what its cgroups are
/// made under (the kernel's file-system types and last capability, this process's bounding
/// set and cgroups, what the seccomp filter cache keys on), for a caller with time to spare
/// before it knows its container (the engine's monitor, waiting for it): that create takes
/// these instead of reading them, as if it had read them at this moment. Best effort.
pub fn read_host_ahead() {
    hull_cgroups::read_host_ahead();
    crate::rootfs::read_ahead();
    crate::security::read_ahead();
}

/// Parses a `linux.resources` object, as runc's `update -r` file holds it, for
/// [`Container::update`]; unknown fields are refused, as in a config.
pub fn parse_resources(json: &[u8]) -> Result<LinuxResources, Error> {
    Ok(crate::resource_update::parse(json)?)
}

/// Refuses to clone from a process with more than one thread (see the module doc).
fn single_threaded(op: &'static str) -> Result<(), Error> {
    match crate::procfs::thread_count() {
        Some(threads) if threads > 1 => Err(Error::MultiThreaded { op, threads }),
        // Without /proc nothing can be checked; the clone goes on as it always did.
        _ => Ok(()),
    }
}
