//! `create`, the runtime's side: validate everything, claim the id, make the cgroup, clone the
//! container's first process and walk it through its setup until it waits for `start`. Any
//! failure undoes all of it.

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use hull_sys::apart::Apart;
use nix::fcntl::{open, OFlag};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::stat::Mode;
use nix::sys::wait::waitpid;
use nix::unistd::{mkfifo, Pid};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::hooks;
use crate::namespaces::NamespacePlan;
use crate::oci_state::{now_rfc3339, OciState};
use crate::process::error::{io, sys, ProcessError};
use crate::process::handoff::{required, route_console};
use crate::process::init::{self, InitContext};
use crate::process::placing::Placing;
use crate::process::stdio::{Console, Stdio};
use crate::procfs;
use crate::rootfs::{CgroupMount, RootfsOptions, RootfsPlan, SharedRootfs};
use crate::security::{PlanOptions, SecurityPlan};
use crate::state::{write_atomic, ContainerDir, ContainerState, Status, Store};
use crate::sync::{Channel, Message};
use crate::sys::clone::Forked;

/// A container to create from an OCI bundle: the bundle, and the runtime's own choices that
/// runc takes as flags.
#[derive(Debug)]
pub struct CreateOptions {
    /// The container id (runc's rule: letters, digits, `_+-.`).
    pub id: String,
    /// The directory holding config.json.
    pub bundle: PathBuf,
    /// Stdio of a process without a terminal.
    pub stdio: Stdio,
    /// Where the pty master goes when config.json asks for a terminal. None refuses a terminal;
    /// a socket for a process without one is refused too, as runc does.
    pub console: Option<Console>,
    /// Write the pid of the container's process here (by rename).
    pub pid_file: Option<PathBuf>,
    /// MS_MOVE + chroot instead of pivot_root (a rootfs on a ramdisk).
    pub no_pivot: bool,
    /// Keep the caller's session keyring instead of a new one.
    pub no_new_keyring: bool,
    /// Pass the caller's descriptors 3 .. 3+N on to the process.
    pub preserve_fds: u16,
    /// Make only the config's `linux.devices`, none of the default device nodes.
    pub no_default_devices: bool,
    /// A network namespace the caller made beforehand (off the container's critical path),
    /// which the process joins instead of the new one config.json asks for. An error when
    /// config.json asks for no new network namespace.
    pub network_namespace: Option<File>,
    /// The caller never changes the bundle's config.json in place (it only ever replaces it by
    /// rename, as hull's engine does): the container's state links it instead of storing a
    /// copy, one file fewer to allocate and write per container.
    pub link_config: bool,
    /// The process goes on to its execve once it is created, without waiting for the
    /// caller's `start`, which the caller still calls to hear how the execve went and to run
    /// the poststart hooks: runc's `run` (create, then start at once) without the round trip
    /// between the process being ready and the start. The start's byte is written once the
    /// `alongside` work is done, so the program still runs only after all of the create.
    /// Not with a seccomp listener, whose agent hears of the process before it runs.
    pub start_when_created: bool,
    /// The bundle's config.json as the caller read and checked it already
    /// ([`Config::parse`](crate::Config::parse), from the very bytes the file holds): the
    /// create neither reads nor parses it again.
    pub config: Option<crate::spec::Config>,
}

impl CreateOptions {
    /// Container `id` from `bundle`, with the caller's stdio and no terminal.
    pub fn new(id: impl Into<String>, bundle: impl Into<PathBuf>) -> CreateOptions {
        CreateOptions {
            id: id.into(),
            bundle: bundle.into(),
            stdio: Stdio::Inherit,
            console: None,
            pid_file: None,
            no_pivot: false,
            no_new_keyring: false,
            preserve_fds: 0,
            no_default_devices: false,
            network_namespace: None,
            link_config: false,
            start_when_created: false,
            config: None,
        }
    }
}

/// A container whose first process waits for `start`.
pub struct Created {
    pub dir: ContainerDir,
    pub state: ContainerState,
    /// The config it was created from (saved as config.json), for a `start` in this process
    /// not to read and parse it again.
    pub spec: Spec,
    /// The pty master, when the process has a terminal and the caller keeps it.
    pub console: Option<OwnedFd>,
    /// What the config asked for that was skipped, as runc skips it (unknown syscall names...).
    pub warnings: Vec<String>,
    /// The exec FIFO's write end, its byte written, when the process was let go on at once
    /// ([`CreateOptions::start_when_created`]): `start` only waits on it.
    pub started: Option<OwnedFd>,
}

/// What was validated before anything was created.
struct Plans {
    spec: Spec,
    /// config.json as read, the runtime's copy of it.
    config: Vec<u8>,
    bundle: PathBuf,
    namespaces: NamespacePlan,
    /// None for a config without `process` (the spec requires it only for `start`).
    security: Option<SecurityPlan>,
    rootfs: RootfsPlan,
    cgroup: hull_cgroups::Cgroup,
}

/// The caller's work that a create runs at two points, so that it overlaps the runtime's own;
/// an error either returns fails the create, which is then undone as after any failure.
pub struct Overlap<'a> {
    /// Runs once config.json is read and checked and the container's state is recorded, before
    /// any cgroup dir or process exists: a caller that has another process mount the root file
    /// system meanwhile waits for it here.
    pub before_clone: &'a mut dyn FnMut() -> Result<(), String>,
    /// Runs with the container process's pid once that process is in its namespaces and
    /// cgroups and has been told to go on (its root file system, pivot and lock-down still
    /// ahead of it): the caller's own preparation for `start`.
    pub alongside: &'a mut dyn FnMut(i32) -> Result<(), String>,
}

impl std::fmt::Debug for Overlap<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overlap").finish_non_exhaustive()
    }
}

/// `sigmask`: the signal mask the container's program starts with. `on_warning` hears the
/// failures of poststop hooks run after a failed create. `overlap`: the caller's work during it.
pub fn create(
    store: &Store,
    mut opts: CreateOptions,
    sigmask: SigSet,
    on_warning: &mut dyn FnMut(&str),
    overlap: Overlap<'_>,
) -> Result<Created, ProcessError> {
    crate::state::validate_id(&opts.id)?;
    let ahead = opts.config.take();
    let opts = &opts;
    let plans = plan(store, opts, ahead)?;
    let dir = store.create(&opts.id)?;
    let poststop = poststop_on_failure(opts, &plans);
    let mut undo = Undo {
        cgroup: None,
        child: None,
        shared_rootfs: None,
    };
    let result = launch(opts, (sigmask, overlap), plans, &dir, &mut undo);
    match result {
        Ok((state, spec, (console, started), warnings)) => {
            undo.cgroup = None;
            undo.child = None;
            undo.shared_rootfs = None;
            Ok(Created {
                dir,
                state,
                spec,
                console,
                warnings,
                started,
            })
        }
        Err(err) => {
            undo.run();
            let _ = dir.remove();
            // The spec (a failing prestart, createRuntime or createContainer hook), and runc
            // for any failure: the lifecycle goes on at destroy, then the poststop hooks.
            if let Some((list, state)) = &poststop {
                let ctx = hooks::Context::default();
                for failed in hooks::run_all("poststop", list, state, &ctx) {
                    on_warning(&failed.to_string());
                }
            }
            Err(err)
        }
    }
}

/// The poststop hooks, with the stopped state they get, for a create that fails.
fn poststop_on_failure(
    opts: &CreateOptions,
    plans: &Plans,
) -> Option<(Vec<oci_spec::runtime::Hook>, Vec<u8>)> {
    let list = plans.spec.hooks().as_ref()?.poststop().clone()?;
    let annotations = plans.spec.annotations().clone().unwrap_or_default();
    let state = OciState {
        oci_version: crate::oci_state::OCI_VERSION,
        id: &opts.id,
        pid: 0,
        status: Status::Stopped,
        bundle: &plans.bundle,
        rootfs: plans.rootfs.rootfs(),
        created: &now_rfc3339(),
        owner: "",
        annotations: &annotations,
    }
    .to_json()
    .ok()?;
    Some((list, state))
}

fn plan(
    store: &Store,
    opts: &CreateOptions,
    ahead: Option<crate::spec::Config>,
) -> Result<Plans, ProcessError> {
    let bundle = std::fs::canonicalize(&opts.bundle)
        .map_err(io(format!("bundle {}", opts.bundle.display())))?;
    let (spec, config) = crate::spec::load(&bundle, ahead)?;
    let linux = spec.linux().as_ref();
    let process = spec.process().as_ref();
    let terminal = process.and_then(|p| p.terminal()).unwrap_or(false);
    crate::process::stdio::check(terminal, &opts.stdio, opts.console.as_ref())?;
    if !terminal && Console::socket(opts.console.as_ref()).is_some() {
        return Err(ProcessError::Invalid(
            "cannot use console socket if hull-runtime will not detach or allocate tty".into(),
        ));
    }
    let mut namespaces = NamespacePlan::new(linux)?;
    if let Some(file) = &opts.network_namespace {
        let file = file
            .try_clone()
            .map_err(io("the caller's network namespace"))?;
        namespaces.join_instead_of_new(LinuxNamespaceType::Network, file)?;
    }
    let security = process
        .map(|process| {
            SecurityPlan::new(
                process,
                linux,
                PlanOptions {
                    in_user_namespace: namespaces.is_private(LinuxNamespaceType::User),
                    extra_caps: Vec::new(),
                    seccomp_cache: Some(store.seccomp_cache()),
                },
            )
        })
        .transpose()?;
    let cgroups_path = linux.and_then(|l| l.cgroups_path().as_deref());
    let cgroup = hull_cgroups::Cgroup::new(cgroups_path, &opts.id)?;
    let cgroup_mounts = cgroup
        .hierarchies()
        .into_iter()
        .map(|h| CgroupMount {
            version: h.version,
            controllers: h.controllers,
            mount_point: h.mount_point,
            path: h.path,
        })
        .collect();
    let rootfs = RootfsPlan::new(
        &spec,
        &bundle,
        RootfsOptions {
            no_pivot: opts.no_pivot,
            no_default_devices: opts.no_default_devices,
            terminal,
            user_namespace: namespaces.is_private(LinuxNamespaceType::User),
            cgroup_namespace: namespaces.is_private(LinuxNamespaceType::Cgroup),
            cgroups: cgroup_mounts,
        },
    )?;
    if namespaces.is_private(LinuxNamespaceType::User) {
        // Only the host's user namespace can idmap host mounts: open them before the clone.
        rootfs.open_idmap_sources()?;
    }
    Ok(Plans {
        spec,
        config,
        bundle,
        namespaces,
        security,
        rootfs,
        cgroup,
    })
}

/// The state, the config, the console and the FIFO of a start already sent, the warnings.
type Launched = (
    ContainerState,
    Spec,
    (Option<OwnedFd>, Option<OwnedFd>),
    Vec<String>,
);

fn launch(
    opts: &CreateOptions,
    (sigmask, overlap): (SigSet, Overlap<'_>),
    mut plans: Plans,
    dir: &ContainerDir,
    undo: &mut Undo,
) -> Result<Launched, ProcessError> {
    let linked = opts.link_config && dir.link_config(&plans.bundle.join("config.json")).is_ok();
    if !linked {
        dir.save_config_bytes(&plans.config)?;
    }
    let fifo_path = dir.fifo_path();
    mkfifo(&fifo_path, Mode::from_bits_truncate(0o622)).map_err(sys("mkfifo exec.fifo"))?;
    let fifo = open(&fifo_path, OFlag::O_RDWR | OFlag::O_CLOEXEC, Mode::empty())
        .map_err(sys("opening exec.fifo"))?;
    // The intent first: recorded before any cgroup dir or process exists, so that if this
    // runtime dies from here on the container reads as "stopped" (pid 0) and `delete` finds every
    // cgroup dir it may have made.
    plans.cgroup.claim();
    let mut state = ContainerState {
        id: opts.id.clone(),
        pid: 0,
        pid_start: 0,
        bundle: plans.bundle.clone(),
        rootfs: plans.rootfs.rootfs().to_path_buf(),
        created: now_rfc3339(),
        annotations: plans.spec.annotations().clone().unwrap_or_default(),
        cgroup: plans.cgroup.clone(),
        shared_rootfs: None,
    };
    // The rootfs mounts made in the caller's namespace, too.
    if plans.rootfs.inherited_mount_ns() {
        let shared = SharedRootfs::record(plans.rootfs.rootfs())?;
        undo.shared_rootfs = Some(shared.clone());
        state.shared_rootfs = Some(shared);
    }
    dir.save(&state)?;
    (overlap.before_clone)().map_err(ProcessError::Alongside)?;

    // The cgroup2 dir before the clone, for the process to be born in it; the v1 dirs after:
    // the process makes its network namespace (most of a container's kernel setup time) while
    // this runtime makes them (see `NamespacePlan::unshare_deferred`), then moves itself into
    // them, once it has `Proceed`, limits applied. Neither move waits for the kernel's global
    // migration lock (`crate::process::placing` says why that matters).
    let mut placing = placing_for(&plans.namespaces);
    let v2_dir = match placing {
        Placing::Itself { .. } => plans.cgroup.make_v2_dir()?,
        Placing::ByRuntime => None,
    };
    if v2_dir.is_some() {
        undo.cgroup = Some(plans.cgroup.clone());
    }
    let (parent, child) = Channel::pair()?;
    // A process that joins its cgroups itself mounts its first entries while this runtime makes
    // them: on another CPU, or not at once (`hull_sys::apart`).
    let apart = match placing {
        Placing::Itself { .. } => Apart::before_fork(),
        Placing::ByRuntime => None,
    };
    let forked = placing.clone_process(
        plans.namespaces.first_clone_flags(),
        v2_dir.as_ref().map(AsFd::as_fd),
    );
    drop(v2_dir);
    let first = match forked.map_err(sys("clone of the container process"))? {
        Forked::Child => init::run(InitContext {
            id: &opts.id,
            spec: &plans.spec,
            namespaces: &plans.namespaces,
            rootfs: &plans.rootfs,
            security: plans.security.as_ref(),
            channel: &child,
            close: vec![parent.raw_fd(), dir.lock_fd()],
            fifo: &fifo,
            stdio: &opts.stdio,
            no_new_keyring: opts.no_new_keyring,
            preserve_fds: i32::from(opts.preserve_fds),
            sigmask,
            joins_cgroup: placing.joined_by_child(&plans.cgroup),
            apart: apart.as_ref(),
        }),
        Forked::Parent(pid) => pid,
    };
    if let Some(apart) = &apart {
        apart.move_child(first);
    }
    undo.child = Some(first);
    drop(child);
    drop(fifo);
    let resources = crate::cgroup_rules::resources(&plans.spec);
    // A failure here removes the dirs made so far itself; the undo kills the process.
    let mut warnings = plans.cgroup.create(Some(&resources))?;
    undo.cgroup = Some(plans.cgroup.clone());
    // The dirs made, exactly; saved with the pid.
    state.cgroup = plans.cgroup.clone();
    let pid = guide(opts, &plans, &parent, first, placing, &state.created)?;
    state.pid = pid.as_raw();
    state.pid_start = procfs::start_time(pid.as_raw()).unwrap_or(0);
    // Recorded while the process pivots and locks itself down, not after: this runtime is idle
    // until Ready, and the record is the same either way (the lock keeps other commands out
    // until this create returns; a failure still removes the whole directory).
    dir.save(&state)?;
    (overlap.alongside)(pid.as_raw()).map_err(ProcessError::Alongside)?;
    let started = start_when_created(opts, &plans, dir)?;
    let console = receive_ready(opts, &plans, &parent, &state)?;
    // Only now: a caller may take the pid file's existence for a created container.
    if let Some(pid_file) = &opts.pid_file {
        write_pid_file(pid_file, pid.as_raw())?;
    }
    if let Some(security) = &plans.security {
        warnings.extend(security.warnings());
    }
    Ok((state, plans.spec, (console, started), warnings))
}

/// The start's byte, written ahead into the exec FIFO when the caller asked for it: the
/// process reads it as soon as it is ready. A process that died meanwhile leaves no reader
/// (ENXIO): nothing is written, and its report is what the create returns.
fn start_when_created(
    opts: &CreateOptions,
    plans: &Plans,
    dir: &ContainerDir,
) -> Result<Option<OwnedFd>, ProcessError> {
    let listener = plans
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .is_some_and(|s| s.listener_path().is_some());
    if !opts.start_when_created || listener || plans.spec.process().is_none() {
        return Ok(None);
    }
    let fifo = match open(
        &dir.fifo_path(),
        OFlag::O_WRONLY | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(nix::errno::Errno::ENXIO) => return Ok(None),
        Err(e) => return Err(sys("opening exec.fifo")(e)),
    };
    nix::unistd::write(&fifo, crate::sync::START_BYTE).map_err(sys("writing exec.fifo"))?;
    Ok(Some(fifo))
}

/// The process moves itself into its cgroups unless it joins namespaces first (another mount
/// namespace need not show the host's cgroup mounts) or gets a new user namespace (whose creator
/// this runtime maps ids for first).
fn placing_for(namespaces: &NamespacePlan) -> Placing {
    if namespaces.needs_intermediate() || namespaces.is_new(LinuxNamespaceType::User) {
        Placing::ByRuntime
    } else {
        Placing::Itself { born_in_v2: false }
    }
}

/// Drives the child through namespaces, cgroup placement and the runtime's hooks. Returns the pid
/// of the container's first process.
fn guide(
    opts: &CreateOptions,
    plans: &Plans,
    channel: &Channel,
    first: Pid,
    placing: Placing,
    created: &str,
) -> Result<Pid, ProcessError> {
    expect(channel, "Created", |m| matches!(m, Message::Created))?;
    plans.namespaces.write_id_maps(first.as_raw())?;
    placing.place(&plans.cgroup, first.as_raw())?;
    channel.send(&Message::Proceed)?;
    let mut pid = first;
    if plans.namespaces.needs_intermediate() && plans.namespaces.intermediate_forks() {
        match channel.recv()?.0 {
            Message::Pid(raw) => pid = Pid::from_raw(raw),
            Message::Error(msg) => return Err(ProcessError::Child(msg)),
            got => return Err(unexpected("Pid", got)),
        }
        // The grandchild, if anything fails from here, dies with the cgroup's processes.
        let _ = waitpid(first, None);
    }
    if let Some(score) = plans
        .spec
        .process()
        .as_ref()
        .and_then(|p| p.oom_score_adj())
    {
        crate::security::set_oom_score_adj(pid.as_raw(), score)?;
    }
    if !hooks::setup_sync(&plans.spec) {
        return Ok(pid);
    }
    expect(channel, "CreateRuntimeHooks", |m| {
        matches!(m, Message::CreateRuntimeHooks)
    })?;
    let annotations = plans.spec.annotations().clone().unwrap_or_default();
    let state = OciState {
        oci_version: crate::oci_state::OCI_VERSION,
        id: &opts.id,
        pid: pid.as_raw(),
        status: Status::Creating,
        bundle: &plans.bundle,
        rootfs: plans.rootfs.rootfs(),
        created,
        owner: "",
        annotations: &annotations,
    }
    .to_json()?;
    if let Some(h) = plans.spec.hooks() {
        // runc runs them in the bundle, with its own environment.
        let at_bundle = hooks::Context {
            env: None,
            cwd: Some(&plans.bundle),
        };
        #[allow(deprecated)]
        if let Some(list) = h.prestart() {
            hooks::run("prestart", list, &state, &at_bundle)?;
        }
        if let Some(list) = h.create_runtime() {
            hooks::run("createRuntime", list, &state, &at_bundle)?;
        }
    }
    channel.send(&Message::ProceedWithState(
        String::from_utf8_lossy(&state).into_owned(),
    ))?;
    Ok(pid)
}

/// Takes the pty master and seccomp listener as they come, until the process is ready.
fn receive_ready(
    opts: &CreateOptions,
    plans: &Plans,
    channel: &Channel,
    state: &ContainerState,
) -> Result<Option<OwnedFd>, ProcessError> {
    let mut console = None;
    loop {
        let (message, fd) = channel.recv()?;
        match message {
            Message::Ready => return Ok(console),
            Message::Console => {
                console = route_console(Console::socket(opts.console.as_ref()), fd)?
            }
            Message::SeccompListener => {
                send_listener(plans, state, required(fd, "seccomp listener")?)?
            }
            Message::Error(msg) => return Err(ProcessError::Child(msg)),
            got => return Err(unexpected("Ready", got)),
        }
    }
}

fn send_listener(
    plans: &Plans,
    state: &ContainerState,
    listener: OwnedFd,
) -> Result<(), ProcessError> {
    let seccomp = plans
        .spec
        .linux()
        .as_ref()
        .and_then(|l| l.seccomp().as_ref())
        .ok_or_else(|| ProcessError::Invalid("seccomp listener without seccomp".into()))?;
    let path = seccomp.listener_path().as_ref().ok_or_else(|| {
        ProcessError::Invalid("linux.seccomp.listenerPath is required for SCMP_ACT_NOTIFY".into())
    })?;
    let oci = OciState {
        oci_version: crate::oci_state::OCI_VERSION,
        id: &state.id,
        pid: state.pid,
        status: Status::Creating,
        bundle: &state.bundle,
        rootfs: &state.rootfs,
        created: &state.created,
        owner: "",
        annotations: &state.annotations,
    };
    let value = serde_json::to_value(&oci).map_err(crate::state::encode("OCI state"))?;
    crate::security::send_seccomp_listener(
        path,
        listener.as_fd(),
        state.pid,
        seccomp.listener_metadata().as_deref(),
        &value,
    )?;
    Ok(())
}

fn expect(
    channel: &Channel,
    name: &'static str,
    pred: impl Fn(&Message) -> bool,
) -> Result<(), ProcessError> {
    match channel.recv()?.0 {
        m if pred(&m) => Ok(()),
        Message::Error(msg) => Err(ProcessError::Child(msg)),
        got => Err(unexpected(name, got)),
    }
}

fn unexpected(expected: &'static str, got: Message) -> ProcessError {
    crate::sync::SyncError::Unexpected { expected, got }.into()
}

/// runc writes the pid file by rename, so a reader never sees it empty.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<(), ProcessError> {
    let path = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(io("current directory"))?
            .join(path)
    };
    write_atomic(&path, pid.to_string().as_bytes(), 0o644)?;
    Ok(())
}

/// What a failed create removes, newest first; the state dir goes last, by the caller.
struct Undo {
    cgroup: Option<hull_cgroups::Cgroup>,
    child: Option<Pid>,
    shared_rootfs: Option<SharedRootfs>,
}

impl Undo {
    fn run(&mut self) {
        if let Some(pid) = self.child.take() {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cgroup) = self.cgroup.take() {
            // Children of a dying intermediate may still be leaving the cgroup: kill and retry.
            if let Ok(pids) = cgroup.pids() {
                for pid in pids {
                    let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
                }
            }
            let _ = cgroup.remove();
        }
        if let Some(shared) = self.shared_rootfs.take() {
            let _ = shared.release();
        }
    }
}
