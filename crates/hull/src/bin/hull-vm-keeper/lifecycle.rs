//! The lifecycle of a VM container as runc's verbs: `create` forks the keeper (the
//! container's process) and returns once its VM is booted; the keeper waits on `exec.fifo`
//! until `start`, runs the process, and exits with its status; `state`, `kill`, `delete`.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use nix::fcntl::OFlag;
use nix::sys::signal::{kill as send, Signal};
use nix::sys::stat::Mode;
use nix::unistd::{fork, ForkResult, Pid};
use serde_json::Value;

use crate::plan::{self, Plan};
use crate::record::{self, Record, FIFO};
use crate::vm;

#[derive(Debug, Args)]
pub struct CreateArgs {
    #[arg(long, default_value = ".")]
    bundle: PathBuf,
    #[arg(long = "pid-file")]
    pid_file: Option<PathBuf>,
    id: String,
}

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    #[arg(long)]
    detach: bool,
    #[arg(long)]
    keep: bool,
}

#[derive(Debug, Args)]
pub struct KillArgs {
    #[arg(long)]
    all: bool,
    id: String,
    signal: String,
}

#[derive(Debug, Args)]
pub struct DeleteArgs {
    #[arg(long)]
    pub force: bool,
    pub id: String,
}

/// The bundle's config.json and the VM's plan, checked before anything is made.
fn load_bundle(bundle: &Path) -> anyhow::Result<(PathBuf, Value, Plan)> {
    let bundle = std::path::absolute(bundle).unwrap_or_else(|_| bundle.to_path_buf());
    let path = bundle.join("config.json");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: Value =
        serde_json::from_str(&text).with_context(|| format!("{}", path.display()))?;
    let plan = plan::plan(&bundle, &config, hull_vmm::host_kvm())?;
    Ok((bundle, config, plan))
}

/// Claims `id` (its directory, made at once or not at all) and records the container.
fn claim(
    root: &Path,
    id: &str,
    bundle: PathBuf,
    config: &Value,
    plan: &Plan,
) -> anyhow::Result<Record> {
    hull_sys::id::validate_id(id)?;
    std::fs::create_dir_all(root).with_context(|| format!("creating {}", root.display()))?;
    let dir = record::dir(root, id);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            bail!("container with id {id} already exists")
        }
        Err(e) => return Err(e).with_context(|| format!("creating {}", dir.display())),
    }
    let annotations = config["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default();
    let rec = Record {
        id: id.to_string(),
        bundle,
        rootfs: plan.rootfs.clone(),
        created: hull_runtime::now_rfc3339(),
        annotations,
        pid: 0,
        pid_start: 0,
        vmm: None,
        cgroup: None,
        netns: None,
    };
    if let Err(e) = rec.save(root) {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(e);
    }
    Ok(rec)
}

fn write_pid_file(path: Option<&Path>, pid: i32) -> anyhow::Result<()> {
    let Some(path) = path else { return Ok(()) };
    let tmp = path.with_extension("hull-tmp");
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("writing {}", path.display()))
}

/// Marks this process as the container's pid in `rec`.
fn record_self(root: &Path, rec: &mut Record) -> anyhow::Result<()> {
    let pid = nix::unistd::getpid().as_raw();
    rec.pid = pid;
    rec.pid_start = hull_sys::procfs::start_time(pid).unwrap_or(0);
    rec.save(root)
}

pub fn create(root: &Path, args: CreateArgs, error_fd: Option<i32>) -> anyhow::Result<()> {
    let (bundle, config, plan) = load_bundle(&args.bundle)?;
    let rec = claim(root, &args.id, bundle, &config, &plan)?;
    let (ready_r, ready_w) = nix::unistd::pipe2(OFlag::O_CLOEXEC).context("pipe2")?;
    // SAFETY: this process is single-threaded here (nothing before starts a thread), so the
    // child may go on running Rust code.
    match unsafe { fork() }.context("fork")? {
        ForkResult::Child => {
            drop(ready_r);
            crate::close_error_fd(error_fd);
            // The forked child ends here: returning would run the parent's path twice.
            #[allow(clippy::exit)]
            std::process::exit(keep(root, rec, &config, &plan, ready_w));
        }
        ForkResult::Parent { child } => {
            drop(ready_w);
            let mut text = String::new();
            let _ = File::from(ready_r).read_to_string(&mut text);
            if text == "ok" {
                return write_pid_file(args.pid_file.as_deref(), child.as_raw());
            }
            let _ = nix::sys::wait::waitpid(child, None);
            let _ = delete(root, &args.id, true);
            if text.is_empty() {
                bail!("the VM's keeper died while creating the container");
            }
            bail!("{text}");
        }
    }
}

/// The keeper of a created container: boots, reports to `create`, waits for `start`, runs the
/// process to its exit; its exit status.
fn keep(root: &Path, mut rec: Record, config: &Value, plan: &Plan, ready: OwnedFd) -> i32 {
    let mut ready = File::from(ready);
    let booted = vm::boot(root, &mut rec, plan, true).and_then(|vm| {
        let spec = vm::run_spec(root, config, &vm)?;
        record_self(root, &mut rec)?;
        let fifo = record::dir(root, &rec.id).join(FIFO);
        nix::unistd::mkfifo(&fifo, Mode::from_bits_truncate(0o600)).context("mkfifo")?;
        Ok((vm, spec, fifo))
    });
    let (vm, spec, fifo) = match booted {
        Ok(b) => b,
        Err(e) => {
            let _ = ready.write_all(format!("{e:#}").as_bytes());
            return 1;
        }
    };
    let _ = ready.write_all(b"ok");
    drop(ready);
    // Blocks until `start` opens the other end (or a signal ends this process).
    let mut gate = match std::fs::OpenOptions::new().write(true).open(&fifo) {
        Ok(f) => f,
        Err(_) => return 1,
    };
    let _ = std::fs::remove_file(&fifo);
    if let Err(e) = vm.start(spec) {
        let _ = gate.write_all(format!("{e:#}").as_bytes());
        drop(gate);
        let mut vm = vm;
        vm.stop(false);
        return 1;
    }
    let _ = gate.write_all(b"ok");
    drop(gate);
    match vm.wait() {
        Ok(code) => code,
        Err(e) => {
            crate::report(None, &format!("{e:#}"));
            125
        }
    }
}

/// `run`: the container in the foreground, this process its keeper (or, detached, create and
/// start); deleted at the end unless `keep`.
pub fn run(root: &Path, args: RunArgs, error_fd: Option<i32>) -> anyhow::Result<i32> {
    if args.detach {
        let id = args.create.id.clone();
        create(root, args.create, error_fd)?;
        start(root, &id)?;
        return Ok(0);
    }
    let (bundle, config, plan) = load_bundle(&args.create.bundle)?;
    let id = args.create.id;
    let mut rec = claim(root, &id, bundle, &config, &plan)?;
    let result = (|| {
        let vm = vm::boot(root, &mut rec, &plan, false)?;
        let spec = vm::run_spec(root, &config, &vm)?;
        record_self(root, &mut rec)?;
        write_pid_file(args.create.pid_file.as_deref(), rec.pid)?;
        vm.start(spec)?;
        vm.wait()
    })();
    if !args.keep || result.is_err() {
        delete(root, &id, true)?;
    }
    result
}

pub fn start(root: &Path, id: &str) -> anyhow::Result<()> {
    let rec = Record::load(root, id)?;
    match rec.status(root) {
        "created" => {}
        "running" => bail!("container {id} is already running"),
        other => bail!("cannot start a container that has {other}"),
    }
    let path = record::dir(root, id).join(FIFO);
    // The open waits for the keeper's; a keeper that died meanwhile would leave it waiting.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(File::open(&path).and_then(|mut f| {
            let mut text = String::new();
            f.read_to_string(&mut text).map(|_| text)
        }));
    });
    loop {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok(Ok(text)) if text == "ok" => return Ok(()),
            Ok(Ok(text)) if text.is_empty() => bail!("the container's process did not start"),
            Ok(Ok(text)) => bail!("{text}"),
            Ok(Err(e)) => return Err(e).context("opening the container's exec.fifo"),
            Err(_) if !rec.keeper_alive() => bail!("the container's keeper died"),
            Err(_) => {}
        }
    }
}

pub fn state(root: &Path, id: &str) -> anyhow::Result<()> {
    let rec = Record::load(root, id)?;
    println!("{}", serde_json::to_string_pretty(&rec.state(root))?);
    Ok(())
}

pub fn list(root: &Path) -> anyhow::Result<()> {
    let states: Vec<Value> = record::all(root).iter().map(|r| r.state(root)).collect();
    println!("{}", serde_json::to_string(&states)?);
    Ok(())
}

pub fn kill(root: &Path, args: &KillArgs) -> anyhow::Result<()> {
    let signal = hull_runtime::parse_signal(&args.signal)
        .with_context(|| format!("invalid signal {:?}", args.signal))?;
    let rec = Record::load(root, &args.id)?;
    let keeper = Pid::from_raw(rec.pid);
    match rec.status(root) {
        // Before start the keeper is all there is: it takes the VM along.
        "created" => send(keeper, signal).context("kill")?,
        "running" if args.all && signal == Signal::SIGKILL => {
            send(keeper, signal).context("kill")?;
        }
        "running" => {
            let dir = record::dir(root, &args.id);
            let mut conn = hull_engine::vm::connect_in(&dir, hull_engine::vm::control::SOCKET)?;
            let line = hull_engine::vm::control::Request::Signal(signal as i32).encode();
            conn.write_all(line.as_bytes())
                .context("writing to the VM's control socket")?;
        }
        _ => bail!("container not running"),
    }
    Ok(())
}

/// Waits up to ten seconds for `alive` to turn false.
fn wait_gone(what: &str, alive: impl Fn() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive() {
        if Instant::now() > deadline {
            bail!("{what} does not die");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    Ok(())
}

pub fn delete(root: &Path, id: &str, force: bool) -> anyhow::Result<()> {
    let rec = Record::load(root, id)?;
    let status = rec.status(root);
    // `run` deletes its own container: the keeper is this process.
    if rec.keeper_alive() && rec.pid != nix::unistd::getpid().as_raw() {
        if !force {
            bail!("cannot delete container {id} that is not stopped: {status}");
        }
        let _ = send(Pid::from_raw(rec.pid), Signal::SIGKILL);
        wait_gone("the VM's keeper", || rec.keeper_alive())?;
    }
    // The parent-death signal kills it with the keeper; this is for one that got away.
    if let Some(pid) = rec.vmm_alive() {
        let _ = send(Pid::from_raw(pid), Signal::SIGKILL);
        wait_gone("the VMM", || rec.vmm_alive().is_some())?;
    }
    if let Some(ns) = &rec.netns {
        crate::net::cleanup(ns)?;
    }
    if let Some(cg) = &rec.cgroup {
        cg.remove().context("removing the VM's cgroup")?;
    }
    let dir = record::dir(root, id);
    std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()))
}
