//! The keeper's VM: the bundle's rootfs (and the files bound into it) as erofs disks in the
//! container's directory, the cgroup of `linux.cgroupsPath` that the keeper joins (so the VMM,
//! its child, is charged there), qemu started with the parent-death signal, and the agent
//! channel: a reader thread turns the main process's output frames into writes on the keeper's
//! own stdout and stderr and passes exec sessions' frames on (`Routes`); the control socket
//! (`ctl.sock`, the engine's protocol: signals, exec sessions) is served by another thread.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hull_engine::monitor::vm::{AGENT_SOCKET, CONSOLE_LOG};
use hull_engine::monitor::vm_control::{self, AgentSender, MainFrame, Routes};
use hull_engine::vm::control::SOCKET as CTL_SOCKET;
use hull_engine::vm::qemu::{self, Accel, QemuConfig, QemuNet};
use hull_vmm::proto::{Message, RootSpec, RunSpec, SeccompFilter};
use serde_json::Value;

use crate::net::VmNet;
use crate::plan::Plan;
use crate::record::{self, Record};

/// The boot, to the agent's `Ready`: seconds under TCG, much longer on a loaded host.
pub const BOOT_TIMEOUT: Duration = Duration::from_secs(300);
/// How long the guest gets to power off after its main process's exit.
const POWER_OFF: Duration = Duration::from_secs(10);

/// What the channel reader tells the keeper's main thread.
#[derive(Debug)]
pub enum Event {
    Ready,
    Started,
    Exit { code: i32, error: Option<String> },
    Gone { error: Option<String> },
}

/// A booted VM, its agent waiting for `Run`.
#[derive(Debug)]
pub struct Vm {
    pub child: Child,
    pub sender: AgentSender,
    pub events: Receiver<Event>,
    /// How many disks make the guest's root.
    pub layers: usize,
    /// The root is the one disk, read-only.
    pub read_only: bool,
    dir: PathBuf,
    /// The pod's namespace qemu runs in, with its tap (removed by [`Vm::stop`]).
    net: Option<(PathBuf, VmNet)>,
}

/// The guest kernel and initramfs: `HULL_VM_KERNEL`/`HULL_VM_INITRD`, else those of the
/// engine's default root (`/var/lib/hull/vm/`) or the qemu cache.
fn assets() -> anyhow::Result<(PathBuf, PathBuf)> {
    let root = Path::new("/var/lib/hull");
    Ok((
        hull_engine::vm::kernel(root)?,
        hull_engine::vm::initrd(root)?,
    ))
}

/// `src` as the erofs image `dest` (uncompressed, xattrs kept).
fn erofs(src: &Path, dest: &Path) -> anyhow::Result<()> {
    let out = Command::new(hull_image::store::MKFS_EROFS)
        .args(["--quiet", "-x1"])
        .arg(dest)
        .arg(src)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .context("cannot run mkfs.erofs (Debian's erofs-utils)")?;
    if !out.status.success() {
        bail!(
            "mkfs.erofs of {} failed: {}",
            src.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// The VM's disks, top first: the files layer (when the spec binds files), then the rootfs.
fn disks(plan: &Plan, dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut disks = Vec::new();
    if !plan.files.is_empty() {
        let staged = dir.join("files");
        crate::plan::stage_files(&plan.files, &staged)?;
        let disk = dir.join("files.erofs");
        erofs(&staged, &disk)?;
        let _ = std::fs::remove_dir_all(&staged);
        disks.push(disk);
    }
    let disk = dir.join("rootfs.erofs");
    erofs(&plan.rootfs, &disk)?;
    disks.push(disk);
    Ok(disks)
}

/// The cgroup of the spec, recorded first, made with the VM's limits (guest memory plus the
/// VMM's overhead, the CPU quota). The keeper of a created container joins it (its pid is the
/// container's); in `run`, whose keeper removes it at the end, only the VMM does: the
/// `cgroup.procs` files for it to join are returned.
fn cgroup(root: &Path, rec: &mut Record, plan: &Plan, join: bool) -> anyhow::Result<Vec<File>> {
    let mut cg = hull_cgroups::Cgroup::new(plan.cgroups_path.as_deref(), &rec.id)?;
    cg.claim();
    rec.cgroup = Some(cg.clone());
    rec.save(root)?;
    let mut r = serde_json::json!({"memory": {
        "limit": plan.memory.saturating_add(hull_engine::vm::VMM_OVERHEAD)}});
    if let Some(q) = plan.cpu_quota {
        r["cpu"] = serde_json::json!({"quota": q, "period": 100_000});
    }
    cg.create(Some(&serde_json::from_value(r)?))
        .context("the VM's cgroup")?;
    if join {
        cg.add_process(std::process::id().try_into().unwrap_or(0))
            .context("joining the VM's cgroup")?;
        return Ok(Vec::new());
    }
    Ok(hull_engine::vm::procs_files(&cg)?)
}

/// Makes the disks and the cgroup, starts qemu and waits for the guest's agent.
/// `join`: the keeper joins the VM's cgroup (else only the VMM does).
pub fn boot(root: &Path, rec: &mut Record, plan: &Plan, join: bool) -> anyhow::Result<Vm> {
    let dir = record::dir(root, &rec.id);
    let (kernel, initrd) = assets()?;
    let disks = disks(plan, &dir)?;
    let procs = cgroup(root, rec, plan, join)?;
    let listener = hull_engine::vm::bind_in(&dir, AGENT_SOCKET)?;
    let ctl = hull_engine::vm::bind_in(&dir, CTL_SOCKET)?;
    let layers = disks.len();
    let cfg = QemuConfig {
        kernel,
        initrd,
        memory: plan.memory,
        vcpus: plan.vcpus,
        disks,
        dir: dir.clone(),
        agent_socket: AGENT_SOCKET.into(),
        console_log: CONSOLE_LOG.into(),
        accel: Accel::for_host(),
    };
    let net = match &plan.netns {
        Some(path) => {
            // Recorded first: `delete` removes the tap whoever dies.
            rec.netns = Some(path.clone());
            rec.save(root)?;
            Some((path.clone(), crate::net::setup(path)?))
        }
        None => None,
    };
    let qemu_net = net.as_ref().map(|(_, n)| QemuNet {
        netns: n.netns.as_fd(),
        tap: n.tap.as_ref().map(|t| t.fd.as_fd()),
        mac: n.tap.as_ref().map_or("", |t| t.interface.mac.as_str()),
    });
    let mut child = qemu::spawn_with_net(&cfg, &procs, qemu_net)?;
    drop(procs);
    let pid = i32::try_from(child.id()).unwrap_or(i32::MAX);
    rec.vmm = Some((pid, hull_sys::procfs::start_time(pid).unwrap_or(0)));
    rec.save(root)?;
    let stream = hull_engine::monitor::vm::accept(&listener, &mut child, &dir)?;
    let reader = stream.try_clone().context("the agent channel")?;
    let sender = AgentSender(Arc::new(Mutex::new(stream)));
    let (tx, events) = mpsc::channel();
    let routes = Routes::default();
    let agent_routes = routes.clone();
    hull_engine::monitor::vm::spawn_thread("hull-vm-agent", move || {
        read_channel(reader, &tx, &agent_routes)
    })?;
    let ctl_sender = sender.clone();
    hull_engine::monitor::vm::spawn_thread("hull-vm-ctl", move || {
        vm_control::serve(&ctl, &ctl_sender, &routes);
    })?;
    let vm = Vm {
        child,
        sender,
        events,
        layers,
        read_only: plan.read_only,
        dir,
        net,
    };
    match vm.events.recv_timeout(BOOT_TIMEOUT) {
        Ok(Event::Ready) => Ok(vm),
        Ok(Event::Gone { error }) => Err(vm.gone("the VM ended before its agent was ready", error)),
        Ok(other) => bail!("the agent's first frame was {other:?}, not Ready"),
        Err(_) => bail!("the VM's agent was not ready in {BOOT_TIMEOUT:?}"),
    }
}

/// The guest's part of config.json: hostname, the disks as an overlay root, the process with
/// its seccomp filter compiled by the runtime at `root` (whose cache keeps it).
pub fn run_spec(root: &Path, config: &Value, vm: &Vm) -> anyhow::Result<RunSpec> {
    let layers = vm.layers;
    let mut process = hull_engine::vm::process_of(&config["process"]);
    process.seccomp = seccomp(root, config)?;
    Ok(RunSpec {
        hostname: config["hostname"].as_str().unwrap_or("hull").to_string(),
        root: Some(RootSpec {
            serial: qemu::layer_serial(0),
            overlay: !vm.read_only,
            read_only: true,
            lower_serials: (1..layers).map(qemu::layer_serial).collect(),
        }),
        process,
        interfaces: vm
            .net
            .as_ref()
            .map(|(_, n)| n.interfaces())
            .unwrap_or_default(),
        // Small files reach the guest in the erofs layer of copied binds (plan.rs).
        ..RunSpec::default()
    })
}

/// `linux.seccomp` compiled for the guest; None without one.
pub fn seccomp(root: &Path, config: &Value) -> anyhow::Result<Option<SeccompFilter>> {
    let section = &config["linux"]["seccomp"];
    if section.is_null() {
        return Ok(None);
    }
    let (flags, program) = hull_runtime::Runtime::new(root).compile_seccomp(section)?;
    let program: Vec<_> = program.iter().map(|f| (f.code, f.jt, f.jf, f.k)).collect();
    Ok(Some(SeccompFilter::new(flags, &program)))
}

impl Vm {
    /// Runs the main process: sends `spec`, then this process's stdin; Ok once it started.
    pub fn start(&self, spec: RunSpec) -> anyhow::Result<()> {
        self.sender.send(&Message::Run(spec));
        hull_engine::monitor::vm::forward_stdin(std::io::stdin(), self.sender.clone())?;
        match self.events.recv_timeout(BOOT_TIMEOUT) {
            Ok(Event::Started) => Ok(()),
            Ok(Event::Exit { code, error }) => {
                bail!(
                    "{}",
                    error.unwrap_or_else(|| format!("the process failed to start ({code})"))
                )
            }
            Ok(Event::Gone { error }) => {
                Err(self.gone("the VM ended before the process started", error))
            }
            Ok(Event::Ready) | Err(_) => bail!("the process did not start in the VM"),
        }
    }

    /// Waits for the main process's exit; its status (128+N for a signal, as a shell's).
    pub fn wait(mut self) -> anyhow::Result<i32> {
        let code = loop {
            match self.events.recv() {
                Ok(Event::Exit { code, .. }) => break Ok(code),
                Ok(Event::Gone { error }) => {
                    break Err(
                        self.gone("the VM stopped before the process reported its exit", error)
                    )
                }
                Ok(_) => {}
                Err(_) => break Err(anyhow::anyhow!("the agent channel's reader ended")),
            }
        };
        self.stop(code.is_ok());
        code
    }

    /// The guest powers off by itself after its main process's end; else the VMM is killed.
    /// Then the tap goes from the pod's namespace, which outlives the VM.
    pub fn stop(&mut self, clean: bool) {
        let deadline = Instant::now() + if clean { POWER_OFF } else { Duration::ZERO };
        while Instant::now() < deadline && self.child.try_wait().ok().flatten().is_none() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some((path, net)) = self.net.take() {
            drop(net);
            if let Err(e) = crate::net::cleanup(&path) {
                crate::report(None, &format!("{e:#}"));
            }
        }
    }

    /// The VM ended early (`what`): why, from the agent, qemu and the console's last lines.
    fn gone(&self, what: &str, error: Option<String>) -> anyhow::Error {
        match hull_engine::monitor::vm::gone("", &self.dir, what, error) {
            hull_engine::EngineError::Monitor { message, .. } => anyhow::anyhow!(message),
            other => other.into(),
        }
    }
}

/// The agent's frames: the main process's output to this process's stdout and stderr (the
/// pipes or files the shim, conmon or shell gave it), its life into `tx`.
fn read_channel(stream: UnixStream, tx: &Sender<Event>, routes: &Routes) {
    let (mut out, mut err) = (std::io::stdout(), std::io::stderr());
    let error = vm_control::read_main_frames(stream, routes, |frame| {
        let event = match frame {
            MainFrame::Stdout(data) => {
                let _ = out.write_all(&data).and_then(|()| out.flush());
                return;
            }
            MainFrame::Stderr(data) => {
                let _ = err.write_all(&data).and_then(|()| err.flush());
                return;
            }
            MainFrame::Ready => Event::Ready,
            MainFrame::Started => Event::Started,
            MainFrame::Exit { code, error } => Event::Exit { code, error },
        };
        let _ = tx.send(event);
    });
    let _ = tx.send(Event::Gone { error });
}
