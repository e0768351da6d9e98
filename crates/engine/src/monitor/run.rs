//! The monitor's life: claim the container in hull.db, make its root (or wait for the `hull
//! run` that starts it to have made it: [`super::root`]), create it through the
//! runtime facade with pipes as its stdio (or a pty with `-t`), give it its network, start it,
//! relay its stdio to the log and to attach clients, wait for it, record the exit, tear down,
//! and with `--rm` remove it.

use std::fs::File;
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::Path;
use std::time::{Duration, Instant};

use hull_net::engine::{AttachRequest, Net, NetMode};
use hull_net::etc::EtcFiles;
use hull_net::netns::NetnsRef;
use hull_runtime::{Console, CreateOptions, Overlap, Runtime, Stdio};
use hull_sys::overwrite::Missing;
use nix::fcntl::OFlag;
use nix::unistd::pipe2;
use rusqlite::Connection;

use super::relay::{Io, Relay, Source};
use super::root::StarterMount;
use super::{own_pid, teardown, Report, Reporter};
use crate::attach::{self, Attach};
use crate::error::{EngineError, EXIT_ENGINE};
use crate::logs::LogWriter;
use crate::options::{Backoff, Network, RestartPolicy};
use crate::store::{self, Record, State};
use crate::{paths, procfs};

/// What a monitor may have before its container exists.
#[derive(Debug, Default)]
pub(super) struct Ahead {
    /// An attach client's socket.
    pub(super) attach: Option<Attach>,
    /// The network namespace an early monitor made for the container.
    pub(super) netns: Option<File>,
    /// The word of the command that mounts the container's root ([`super::root`]); without
    /// it, the monitor mounts the root.
    pub(super) root: Option<StarterMount>,
    /// The container's config.json, read and checked while the monitor waited.
    pub(super) config: Option<hull_runtime::Config>,
}

/// The monitor's exit status (its starter reads reports, not this).
pub(super) fn main(
    root: &Path,
    id: &str,
    db: Result<Db<'_>, EngineError>,
    claimed: Option<Record>,
    reporter: &mut Reporter,
    ahead: Ahead,
) -> i32 {
    match db.and_then(|db| monitor(root, id, db, claimed, reporter, ahead)) {
        Ok(()) => 0,
        Err(e) => {
            reporter.send(&Report::Failed {
                code: e.exit_code(),
                message: e.to_string(),
            });
            1
        }
    }
}

/// The monitor's connection to hull.db.
pub(super) fn open_db(root: &Path) -> Result<Connection, EngineError> {
    let conn = hull_db::open(root)?;
    hull_db::keep_small(&conn)?;
    Ok(conn)
}

/// The monitor's hull.db, opened when first needed: an early monitor, handed its row, first
/// needs it while its container's process sets up (the network, the names), off the run's path.
pub(super) struct Db<'r> {
    root: &'r Path,
    conn: Option<Connection>,
}

impl<'r> Db<'r> {
    pub(super) fn opened(root: &'r Path, conn: Connection) -> Db<'r> {
        Db {
            root,
            conn: Some(conn),
        }
    }

    pub(super) fn later(root: &'r Path) -> Db<'r> {
        Db { root, conn: None }
    }

    pub(super) fn get(&mut self) -> Result<&mut Connection, EngineError> {
        if self.conn.is_none() {
            self.conn = Some(open_db(self.root)?);
        }
        self.conn
            .as_mut()
            .ok_or_else(|| EngineError::Invalid("hull.db is not open".into()))
    }
}

fn monitor(
    root: &Path,
    id: &str,
    mut db: Db<'_>,
    claimed: Option<Record>,
    reporter: &mut Reporter,
    ahead: Ahead,
) -> Result<(), EngineError> {
    let Ahead {
        attach,
        netns,
        root: mut starter,
        config,
    } = ahead;
    // Intent first: from here the row names this monitor as the owner of whatever exists (an
    // early monitor's row named it from its first commit).
    let record = match claimed {
        Some(record) => record,
        None => {
            let me = own_pid();
            let start = procfs::start_time(me).unwrap_or(0);
            match store::claim(db.get()?, id, me, start)? {
                Ok(record) => record,
                Err(state) => {
                    return Err(EngineError::BadState {
                        id: id.to_string(),
                        state: state.map_or("removed", State::as_str).to_string(),
                        op: "start",
                    })
                }
            }
        }
    };
    let mut relay =
        attach::listener().map(|listener| Relay::new(listener, record.settings.interactive));
    let outcome = match &mut relay {
        Ok(relay) if record.settings.vm.is_some() => {
            relay.listen(root, id)?;
            let ctx = super::vm::Ctx {
                root,
                conn: db.get()?,
                record: &record,
                reporter,
                relay,
            };
            super::vm::run(ctx, attach)
        }
        Ok(relay) => {
            // Only a container with a namespace of its own joins the one made ahead.
            let netns = netns.filter(|_| record.settings.network != Network::Host);
            let ahead = (attach, netns, starter.as_mut(), config);
            run_with_policy(root, &mut db, &record, reporter, relay, ahead)
        }
        Err(e) => Err(EngineError::Monitor {
            id: id.to_string(),
            message: e.to_string(),
        }),
    };
    let (code, reason) = match &outcome {
        Ok(code) => (*code, None),
        Err(e) => (e.exit_code(), Some(e.to_string())),
    };
    // The exit first: hull.db has it (the row still names this monitor, which owns the
    // teardown), then attached clients and the starter hear of it, so a foreground `run`
    // returns without waiting for the teardown. Every command that finds this container
    // waits for this monitor to finish (`Engine::find`).
    let finished = hull_runtime::now_rfc3339();
    let exit = store::Exit {
        code,
        finished: &finished,
        reason: reason.as_deref(),
    };
    let conn = db.get()?;
    store::set_exited_by_monitor(conn, id, exit)?;
    if let Ok(relay) = &mut relay {
        relay.finish(code);
    }
    let result = match outcome {
        Ok(code) => {
            reporter.send(&Report::Exited(code));
            Ok(())
        }
        Err(e) => {
            reporter.send(&Report::Failed {
                code: e.exit_code(),
                message: e.to_string(),
            });
            Err(e)
        }
    };
    reporter.close();
    // A root the command is still mounting is mounted before it is taken down.
    if let Some(starter) = &mut starter {
        let _ = starter.wait();
    }
    take_down(root, conn, &record, reason)?;
    // Last, off every command's path: the removed files, and a short WAL that keeps every
    // next hull command fast.
    teardown::empty_trash(root);
    hull_db::checkpoint(conn);
    result
}

/// After the exit is reported: the container's kernel objects go, the row says so (with what
/// could not be removed), and an `--rm` container goes with its anonymous volumes.
fn take_down(
    root: &Path,
    conn: &mut Connection,
    record: &Record,
    reason: Option<String>,
) -> Result<(), EngineError> {
    let id = record.id.as_str();
    let leftovers = teardown::kernel_objects(root, conn, id);
    let reason = match (reason, leftovers.is_empty()) {
        (r, true) => r,
        (r, false) => Some(
            r.into_iter()
                .chain(std::iter::once(format!(
                    "teardown: {}",
                    leftovers.join("; ")
                )))
                .collect::<Vec<_>>()
                .join("; "),
        ),
    };
    if record.settings.rm {
        // The row goes while it still names this monitor: a command in between would take a
        // row that names none for a container that stays, and list it.
        if let Err(e) = teardown::to_trash(root, conn, id) {
            store::torn_down(conn, id, reason.as_deref())?;
            return Err(e);
        }
        store::delete(conn, id)?;
        crate::volumes::remove_anonymous(conn, root, &record.settings.anonymous_volumes);
        return Ok(());
    }
    store::torn_down(conn, id, reason.as_deref())
}

/// Mounts the container's root, then runs its process, and again after each exit as its restart
/// policy says (with the same root and upper dir, and the same address on its network); the
/// last exit status. The starter hears of the first start and the first exit only: a
/// foreground `run` ends with the first exit, as docker's.
fn run_with_policy(
    root: &Path,
    db: &mut Db<'_>,
    record: &Record,
    reporter: &mut Reporter,
    relay: &mut Relay,
    (mut attach, mut netns, mut starter, mut config): (
        Option<Attach>,
        Option<File>,
        Option<&mut StarterMount>,
        Option<hull_runtime::Config>,
    ),
) -> Result<i32, EngineError> {
    let id = record.id.as_str();
    if starter.is_none() {
        super::root::mount(root, record)?;
    }
    let mut backoff = Backoff::default();
    let mut first = true;
    let mut address = None;
    loop {
        let began = Instant::now();
        // The namespace made ahead serves the first run; a restart's process makes a new one.
        let net = (address, netns.take());
        // What was made ahead serves the first run; a restart reads config.json again.
        let before = (attach.take(), starter.take(), config.take());
        let outcome = run_container(root, db, record, reporter, relay, before, net);
        let code = match (&outcome, first) {
            // A container that cannot start the first time is the user's error to see.
            (Err(_), true) => return outcome,
            (Err(e), false) => e.exit_code(),
            (Ok(code), _) => *code,
        };
        first = false;
        // Without a policy nothing in the row can make it restart: its exit goes to the
        // starter without reading hull.db first.
        if record.settings.restart == RestartPolicy::No {
            return outcome;
        }
        let conn = db.get()?;
        let now = store::get(conn, id)?.ok_or_else(|| EngineError::NoSuchContainer(id.into()))?;
        let restarts = now.settings.restart_count;
        if !record
            .settings
            .restart
            .should_restart(code, restarts, now.settings.user_stop)
        {
            return outcome;
        }
        // The process is gone; so are its namespaces. What the runtime and the network keep
        // of it goes before the next one (the root stays mounted, with its upper dir).
        delete_for_restart(root, id)?;
        let mut net = Net::with_conn(conn);
        address = net.attachments(Some(id))?.first().map(|l| l.ip);
        net.detach(id)?;
        if !store::set_restarting(conn, id, code, &hull_runtime::now_rfc3339())? {
            return outcome;
        }
        relay.finish(code);
        if restarts == 0 {
            // The starter (a foreground run) ends with this first exit; it reads no more.
            reporter.send(&Report::Exited(code));
            reporter.close();
        }
        let delay = backoff.next(began.elapsed());
        if !sleep_unless_stopped(conn, id, delay)? {
            return outcome;
        }
    }
}

/// Deletes the runtime's container of the process that exited, so that the next create of the
/// same id can be made. Seen under load with `inspect`s running beside: a first delete failed and
/// the restart's create found the container still there ("already exists"), so it is tried
/// again for a while before the policy gives up with the error.
fn delete_for_restart(root: &Path, id: &str) -> Result<(), EngineError> {
    let runtime = Runtime::new(paths::runtime_root(root));
    let deadline = Instant::now() + RESTART_DELETE_WAIT;
    loop {
        match runtime.delete(id, true) {
            Ok(()) => return Ok(()),
            Err(e) if Instant::now() >= deadline => return Err(EngineError::from_runtime(e)),
            Err(_) => std::thread::sleep(STOP_POLL),
        }
    }
}

/// How long a restart keeps trying to delete the exited process's runtime container.
const RESTART_DELETE_WAIT: Duration = Duration::from_secs(5);

/// Waits `delay` before a restart, looking in hull.db for a user's stop meanwhile; false when
/// one came.
fn sleep_unless_stopped(conn: &Connection, id: &str, delay: Duration) -> Result<bool, EngineError> {
    let deadline = Instant::now() + delay;
    loop {
        let stopped = store::get(conn, id)?.is_none_or(|r| r.settings.user_stop.cancelled);
        if stopped {
            return Ok(false);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(true);
        }
        std::thread::sleep(left.min(STOP_POLL));
    }
}

/// How often a monitor waiting to restart looks for a user's stop.
const STOP_POLL: Duration = Duration::from_millis(50);

/// Makes and runs the container's process, with the address its network gave it before (a
/// restart) and the network namespace made for it ahead, if any; its exit status. `starter`:
/// the command mounting the root meanwhile, waited for before the process exists.
fn run_container(
    root: &Path,
    db: &mut Db<'_>,
    record: &Record,
    reporter: &mut Reporter,
    relay: &mut Relay,
    (attach, mut starter, config): (
        Option<Attach>,
        Option<&mut StarterMount>,
        Option<hull_runtime::Config>,
    ),
    (address, netns): (Option<Ipv4Addr>, Option<File>),
) -> Result<i32, EngineError> {
    let id = record.id.as_str();
    let dir = paths::container_dir(root, id);
    let mut opts = CreateOptions::new(id, &dir);
    // Made ahead by `hull_net::netns::unnamed`, with its loopback up.
    let loopback_up = netns.is_some();
    opts.network_namespace = netns;
    opts.config = config;
    opts.no_pivot = crate::vm_jail::root_is_ramdisk();
    // write_bundle writes config.json once, before this create; nothing rewrites it after.
    opts.link_config = true;
    // The start follows the create at once, so the process need not wait for it: but with a
    // terminal, whose size the monitor sets between the two, as the program's first read
    // must see it.
    opts.start_when_created = !record.settings.tty;
    let (pipes, stdin) = if record.settings.tty {
        // The pty is the process's stdio; its master comes back to the monitor.
        opts.console = Some(Console::Return);
        (None, None)
    } else {
        let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
        let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
        let (stdin_r, stdin_w) = if record.settings.interactive {
            let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
            (r, Some(w))
        } else {
            let null = File::open("/dev/null").map_err(EngineError::io("/dev/null"))?;
            (null.into(), None)
        };
        opts.stdio = Stdio::Fds {
            stdin: stdin_r,
            stdout: out_w,
            stderr: err_w,
        };
        (
            Some(Source::Pipes {
                out: out_r,
                err: err_r,
            }),
            stdin_w,
        )
    };
    let runtime = Runtime::new(paths::runtime_root(root));
    // The network and /etc files while the process sets up its root, not after: both are the
    // container's before its `start`, and the monitor would wait idle meanwhile.
    let mut failed = None;
    let mut root_mounted = || starter.as_mut().map_or(Ok(()), |s| s.wait());
    let mut alongside = |pid| {
        // The attach socket too: clients connect once it runs, after this. And the hold on
        // its mount namespace (the process is in it from its clone), off the path to start.
        reporter.hold_mount_ns(pid);
        relay
            .listen(root, id)
            .and_then(|()| db.get())
            .and_then(|conn| {
                write_etc(
                    root,
                    conn,
                    record,
                    (NetnsRef::Pid(pid), loopback_up),
                    address,
                )?;
                crate::names::publish(root, conn, record)
            })
            .map_err(|e| {
                let message = e.to_string();
                failed = Some(e);
                message
            })
    };
    let overlap = Overlap {
        before_clone: &mut root_mounted,
        alongside: &mut alongside,
    };
    let created = runtime.create_overlapped(opts, overlap);
    let created = match created {
        Ok(created) => created,
        Err(e) => return Err(failed.unwrap_or_else(|| EngineError::from_runtime(e))),
    };
    let source = match (pipes, created.console) {
        (Some(pipes), _) => pipes,
        (None, Some(master)) => Source::Pty(master),
        (None, None) => {
            return Err(EngineError::Monitor {
                id: id.to_string(),
                message: "the runtime returned no terminal for a container made with -t".into(),
            })
        }
    };
    if let Some(a) = attach {
        // The size first, so that the process sees the starter's terminal from its first read.
        if let (Source::Pty(master), Some((rows, cols))) = (&source, a.size) {
            let _ = hull_sys::pty::set_window_size(master.as_fd(), rows, cols);
        }
        relay.add(a.conn);
    }
    let container = created.container;
    let pid = container.pid();
    let started = hull_runtime::now_rfc3339();
    container.start()?;
    // After the start, while the process runs its program: the row said "starting" until now,
    // and says "running" before anyone hears it started.
    let conn = db.get()?;
    if store::set_running(conn, id, pid, &started)?.cancelled {
        // A stop or `rm -f` came while it was starting, before there was a process to signal.
        let _ = container.kill(nix::sys::signal::Signal::SIGKILL, true);
    }
    // Others (stop, kill) reach the container through the runtime's lock while it runs; this
    // monitor, its parent, waits for its process without opening it again.
    let watch = container.watch();
    reporter.send(&Report::Started(pid));
    // Once the container has run a while: the moment to fold a long WAL into hull.db, since
    // every new hull process reads the whole WAL when it opens the database, and to give
    // back memory. Not before: a short container's exit would wait for it.
    let mut idle = || {
        hull_db::checkpoint(conn);
        super::memory::release(conn);
    };
    let mut log = LogWriter::create(&paths::log_file(root, id), record.settings.log)?;
    let mut io = Io::new(source, stdin);
    relay.run_then_idle(&mut io, &mut log, Some(&mut idle));
    log.flush();
    drop(io);
    Ok(watch.wait()?.unwrap_or(EXIT_ENGINE))
}

/// Gives the container's namespace `netns` (its loopback up already when `loopback_up`) its
/// network and writes its hosts, hostname and resolv.conf in place (the container's process
/// bind-mounts them, maybe at this moment: they must keep their inodes).
pub(super) fn write_etc(
    root: &Path,
    conn: &mut Connection,
    record: &Record,
    (netns, loopback_up): (NetnsRef, bool),
    address: Option<Ipv4Addr>,
) -> Result<(), EngineError> {
    let settings = &record.settings;
    let mode = match &settings.network {
        Network::Default => NetMode::Bridge {
            network: None,
            ip: address,
            ports: settings.ports.clone(),
        },
        Network::Named(name) => NetMode::Bridge {
            network: Some(name.clone()),
            ip: address,
            ports: settings.ports.clone(),
        },
        Network::None => NetMode::None,
        Network::Host => NetMode::Host,
    };
    let attachment = Net::with_conn(conn).attach(&AttachRequest {
        container_id: record.id.clone(),
        hostname: settings.hostname.clone(),
        netns,
        mode,
        loopback_up,
    })?;
    let etc = paths::etc_dir(root, &record.id);
    let EtcFiles {
        hostname,
        hosts,
        resolv_conf,
    } = attachment.etc;
    let user = &settings.etc;
    // The host as the container reaches it: its bridge's address, or the host's own loopback
    // when it shares the host's namespace.
    let gateway = match (&attachment.link, &settings.network) {
        (_, Network::Host) => Some("127.0.0.1".to_string()),
        (Some(link), _) => link.gateway.map(|g| g.to_string()),
        (None, _) => None,
    };
    let hosts = hull_net::etc::add_hosts(&hosts, &user.hosts, gateway.as_deref());
    let resolv_conf = hull_net::etc::override_resolv(
        &resolv_conf,
        &user.dns,
        &user.dns_search,
        &user.dns_options,
    );
    for (name, text) in [
        ("hostname", hostname),
        ("hosts", hosts),
        ("resolv.conf", resolv_conf),
    ] {
        let path = etc.join(name);
        hull_sys::overwrite::overwrite(&path, text.as_bytes(), Missing::Create)
            .map_err(EngineError::io(format!("writing {}", path.display())))?;
    }
    Ok(())
}
