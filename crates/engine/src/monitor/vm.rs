//! The monitor of a VM-isolated container: instead of a runtime container, a VM (the qemu
//! backend, `crate::vm::qemu`) with the image's layers as disks, and the guest agent's channel
//! turned into the container's stdio: the agent's stdout and stderr frames go into two pipes
//! that the same relay as a container's reads (log, attach clients), the relay's stdin pipe
//! goes back as stdin frames, and the main process's exit is the container's. Threads: the
//! channel reader, the stdin forwarder and the control socket (`crate::vm::control`); the
//! monitor's main thread starts the VMM, so the VMM dies with the monitor. The VMM runs in the
//! container's network namespace, with a NIC on its network (`vm_net`).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::process::Child;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hull_vmm::proto::{Message, RunSpec, MAIN_ID, MAX_CHUNK};
use nix::fcntl::OFlag;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::unistd::pipe2;
use rusqlite::Connection;

use super::relay::{Io, Relay, Source};
use super::vm_control::{self, AgentSender, MainFrame, Routes};
use super::{Report, Reporter};
use crate::attach::Attach;
use crate::error::EngineError;
use crate::logs::LogWriter;
use crate::paths;
use crate::store::{self, Record};
use crate::vm::control;
use crate::vm::qemu::{self, Accel, QemuConfig};
use crate::vm::{self, VmSettings};

/// The boot, to the main process's start: seconds under TCG, much longer on a loaded host.
const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the guest gets to power off after its main process's exit.
const POWER_OFF: Duration = Duration::from_secs(10);

/// The names of the agent's socket and the guest's console log in the VM's directory.
pub const AGENT_SOCKET: &str = "agent.sock";
pub const CONSOLE_LOG: &str = "console.log";

/// What the channel reader tells the monitor's main thread.
#[derive(Debug)]
enum Event {
    Started,
    Exit {
        code: i32,
        error: Option<String>,
    },
    /// The channel closed (the VM ended) without the main process's exit.
    Gone {
        error: Option<String>,
    },
}

/// What the monitor hands the VM's run: its state, and the ends it reports and relays to.
#[derive(Debug)]
pub(super) struct Ctx<'a> {
    pub root: &'a Path,
    pub conn: &'a mut Connection,
    pub record: &'a Record,
    pub reporter: &'a mut Reporter,
    pub relay: &'a mut Relay,
}

/// Runs the VM container `record` to its main process's exit; its exit status.
pub(super) fn run(mut ctx: Ctx<'_>, attach: Option<Attach>) -> Result<i32, EngineError> {
    let (root, record) = (ctx.root, ctx.record);
    let id = record.id.as_str();
    let settings = record
        .settings
        .vm
        .as_ref()
        .ok_or_else(|| EngineError::Monitor {
            id: id.to_string(),
            message: "the container has no VM settings".into(),
        })?;
    // The network first: it writes the /etc files the spec carries.
    let net = super::vm_net::setup(root, ctx.conn, record)?;
    let mut spec = vm::spec::run_spec(root, record)?;
    spec.interfaces = net.interfaces();
    let disks = hull_image::ImageStore::open(root)?.layer_disks(&record.settings.manifest)?;
    let dir = vm::dir(root, id);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)
        .map_err(EngineError::io(format!("creating {}", dir.display())))?;
    let listener = vm::bind_in(&dir, AGENT_SOCKET)?;
    let ctl = vm::bind_in(&dir, control::SOCKET)?;
    let cfg = qemu_config(settings, disks, &dir);
    // Removed by the teardown (`vm::teardown`) once the VMM is gone.
    let (_cgroup, procs) = vm::cgroup::create(&dir, id, settings)?;
    let mut child = match settings.vmm {
        vm::Vmm::Qemu => qemu::spawn_with_net(&cfg, &procs, Some(net.qemu()))?,
        // hull-vmm has no virtio-net: `vm::hull::check_host` lets only `--network none` here.
        vm::Vmm::Hull => vm::hull::spawn(&cfg, &procs)?,
    };
    drop(procs);
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    vm::record_vmm(root, id, pid)?;
    let result = serve(&mut ctx, attach, spec, &listener, ctl, &mut child);
    stop_vmm(&mut child, &result);
    let status = child.wait().ok();
    // The namespace ends with the VMM gone and this, its last holder, closed: the veth and the
    // tap go with it.
    drop(net);
    match result {
        Ok(Some(code)) => Ok(code),
        // Killed from outside (`stop` after its timeout, `kill -9` of the VMM): SIGKILL's code.
        Ok(None)
            if status.is_some_and(|s| {
                std::os::unix::process::ExitStatusExt::signal(&s) == Some(libc::SIGKILL)
            }) =>
        {
            Ok(137)
        }
        Ok(None) => Err(gone(
            id,
            &cfg.dir,
            "the VM stopped before the command reported its exit",
            None,
        )),
        Err(e) => Err(e),
    }
}

fn qemu_config(vm: &VmSettings, disks: Vec<std::path::PathBuf>, dir: &Path) -> QemuConfig {
    QemuConfig {
        kernel: vm.kernel.clone(),
        initrd: vm.initrd.clone(),
        memory: vm.memory,
        vcpus: vm.vcpus,
        disks,
        dir: dir.to_path_buf(),
        agent_socket: AGENT_SOCKET.into(),
        console_log: CONSOLE_LOG.into(),
        accel: Accel::for_host(),
    }
}

/// After the run: the guest powers off by itself once its main process ended; otherwise (a
/// failure, a timeout) the VMM is killed.
fn stop_vmm(child: &mut Child, result: &Result<Option<i32>, EngineError>) {
    let deadline = Instant::now()
        + if result.is_ok() {
            POWER_OFF
        } else {
            Duration::ZERO
        };
    while Instant::now() < deadline {
        if child.try_wait().ok().flatten().is_some() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
}

/// The VM ended without the command's exit (`what`): why, from the agent's error, qemu's own
/// messages and the console's last lines, as one line.
pub fn gone(id: &str, dir: &Path, what: &str, error: Option<String>) -> EngineError {
    let last = |name: &str, n: usize| {
        let text = std::fs::read_to_string(dir.join(name)).unwrap_or_default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        lines[lines.len().saturating_sub(n)..].join(" | ")
    };
    let mut message = what.to_string();
    for (label, text) in [
        ("agent", error.unwrap_or_default()),
        (qemu::QEMU, last(qemu::QEMU_LOG, 2)),
        (vm::hull::HULL_VMM, last(vm::hull::VMM_LOG, 2)),
        ("console", last(CONSOLE_LOG, 3)),
    ] {
        if !text.is_empty() {
            message.push_str(&format!("; {label}: {text}"));
        }
    }
    EngineError::Monitor {
        id: id.to_string(),
        message,
    }
}

/// Waits for qemu to connect the agent port to `listener`.
pub fn accept(
    listener: &UnixListener,
    child: &mut Child,
    dir: &Path,
) -> Result<UnixStream, EngineError> {
    let deadline = Instant::now() + BOOT_TIMEOUT;
    loop {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        let _ = poll(&mut fds, PollTimeout::from(100u16));
        if fds[0]
            .revents()
            .is_some_and(|r| r.contains(PollFlags::POLLIN))
        {
            let (s, _) = listener
                .accept()
                .map_err(EngineError::io("accepting the VM's agent channel"))?;
            return Ok(s);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let err: String = [qemu::QEMU_LOG, vm::hull::VMM_LOG]
                .iter()
                .filter_map(|log| std::fs::read_to_string(dir.join(log)).ok())
                .collect();
            return Err(EngineError::Invalid(format!(
                "the VMM exited ({status}) before connecting the agent: {}",
                err.trim().replace('\n', " ")
            )));
        }
        if Instant::now() > deadline {
            return Err(EngineError::Invalid(format!(
                "{} did not connect the agent in {BOOT_TIMEOUT:?}",
                qemu::QEMU
            )));
        }
    }
}

/// The run, once qemu runs: the main process's exit code, or None when the VM ended first.
fn serve(
    ctx: &mut Ctx<'_>,
    attach: Option<Attach>,
    spec: RunSpec,
    listener: &UnixListener,
    ctl: UnixListener,
    child: &mut Child,
) -> Result<Option<i32>, EngineError> {
    let (root, conn, record) = (ctx.root, &*ctx.conn, ctx.record);
    let id = record.id.as_str();
    let stream = accept(listener, child, &vm::dir(root, id))?;
    let reader = stream
        .try_clone()
        .map_err(EngineError::io("the agent channel"))?;
    let sender = AgentSender(Arc::new(Mutex::new(stream)));
    let (out_r, out_w) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
    let (err_r, err_w) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
    sender.send(&Message::Run(spec));
    let stdin_w = if record.settings.interactive {
        let (r, w) = pipe2(OFlag::O_CLOEXEC).map_err(EngineError::sys("pipe2"))?;
        let _ = forward_stdin(File::from(r), sender.clone());
        Some(w)
    } else {
        sender.send(&Message::StdinClose { id: MAIN_ID });
        None
    };
    let (tx, events) = mpsc::channel();
    let routes = Routes::default();
    let agent_routes = routes.clone();
    spawn_thread("hull-vm-agent", move || {
        read_channel(reader, out_w, err_w, &tx, &agent_routes)
    })?;
    let ctl_sender = sender.clone();
    spawn_thread("hull-vm-ctl", move || {
        vm_control::serve(&ctl, &ctl_sender, &routes)
    })?;
    match events.recv_timeout(BOOT_TIMEOUT) {
        Ok(Event::Started) => {}
        Ok(Event::Exit { code, error }) => {
            return Err(EngineError::Exec {
                code,
                message: error.unwrap_or_else(|| format!("the command failed to start ({code})")),
            })
        }
        Ok(Event::Gone { error }) => {
            return Err(gone(
                id,
                &vm::dir(root, id),
                "the VM ended before the command started",
                error,
            ))
        }
        Err(_) => {
            return Err(EngineError::Monitor {
                id: id.to_string(),
                message: format!("the command did not start in the VM in {BOOT_TIMEOUT:?}"),
            })
        }
    }
    if let Some(a) = attach {
        ctx.relay.add(a.conn);
    }
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    if store::set_running(conn, id, pid, &hull_runtime::now_rfc3339())?.cancelled {
        // A stop or `rm -f` came while it was starting, before there was a process to signal.
        let _ = child.kill();
    }
    ctx.reporter.send(&Report::Started(pid));
    hull_db::checkpoint(conn);
    let mut log = LogWriter::create(&paths::log_file(root, id), record.settings.log)?;
    let mut io = Io::new(
        Source::Pipes {
            out: out_r,
            err: err_r,
        },
        stdin_w,
    );
    ctx.relay.run(&mut io, &mut log);
    log.flush();
    drop(io);
    Ok(final_event(&events))
}

fn final_event(events: &Receiver<Event>) -> Option<i32> {
    loop {
        match events.recv_timeout(POWER_OFF) {
            Ok(Event::Exit { code, .. }) => return Some(code),
            Ok(Event::Gone { .. })
            | Err(RecvTimeoutError::Disconnected | RecvTimeoutError::Timeout) => return None,
            Ok(Event::Started) => {}
        }
    }
}

/// A named thread of a VM's host side (monitor or keeper).
pub fn spawn_thread(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), EngineError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
        .map_err(EngineError::io(format!("starting the {name} thread")))
}

/// `input` (the relay's stdin pipe; the keeper's own stdin) to the guest's main process, as
/// stdin frames from a thread of its own; its end as the end of stdin.
pub fn forward_stdin(
    mut input: impl Read + Send + 'static,
    sender: AgentSender,
) -> Result<(), EngineError> {
    spawn_thread("hull-vm-stdin", move || {
        let mut buf = vec![0u8; MAX_CHUNK];
        while let Ok(n @ 1..) = input.read(&mut buf) {
            sender.send(&Message::Stdin {
                id: MAIN_ID,
                data: buf[..n].to_vec(),
            });
        }
        sender.send(&Message::StdinClose { id: MAIN_ID });
    })
}

/// The agent's frames: the main process's output into the pipes, its life into `tx`.
fn read_channel(
    stream: UnixStream,
    out: OwnedFd,
    err: OwnedFd,
    tx: &Sender<Event>,
    routes: &Routes,
) {
    let mut pipes = Some((File::from(out), File::from(err)));
    let error = vm_control::read_main_frames(stream, routes, |frame| match frame {
        MainFrame::Stdout(data) => {
            if let Some((o, _)) = pipes.as_mut() {
                let _ = o.write_all(&data);
            }
        }
        MainFrame::Stderr(data) => {
            if let Some((_, e)) = pipes.as_mut() {
                let _ = e.write_all(&data);
            }
        }
        MainFrame::Ready => {}
        MainFrame::Started => {
            let _ = tx.send(Event::Started);
        }
        MainFrame::Exit { code, error } => {
            // The output is all sent before the exit: the relay sees the pipes end.
            pipes = None;
            let _ = tx.send(Event::Exit { code, error });
        }
    });
    drop(pipes);
    let _ = tx.send(Event::Gone { error });
}
