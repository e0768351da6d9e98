//! hull-vmm: the process that is a microVM's VMM, started by `hull vm run` in its jail
//! (`--in-jail`: hull_engine::vm_jail) or, with --no-jail, in place of it. It takes its orders
//! as one JSON argument (hull_vmm::launch::Launch) and links no more than the VMM needs (no
//! argument parser, database or netlink): every page of it is overhead beside guest memory.
//! Its exit status is the guest command's, or the bare VM's (0, or 125 when it failed).
//!
//! usage: hull-vmm [--in-jail] LAUNCH_JSON

mod api;
mod relay;
mod socket;

use std::os::unix::net::UnixListener;
use std::time::Duration;

use anyhow::{bail, Context};
use hull_vmm::boot::Entry;
use hull_vmm::launch::{Launch, API_SOCKET};
use hull_vmm::{Consoles, RunReport, StopReason, Vm};

use relay::ConsoleTail;

/// docker's status for a failure of the engine rather than of the command.
const EXIT_VM_FAILED: i32 = 125;

fn main() {
    // One malloc arena for all threads. glibc sizes its arena limit, once more than eight
    // arenas exist, by reading /sys/devices/system/cpu/online: an open(2) the seccomp filter
    // kills the VMM for (seen with a few `hull vm exec` clients). One arena also keeps the
    // VMM's heap, its memory beyond guest RAM, from growing a heap per thread.
    // SAFETY: mallopt only sets a malloc parameter; nothing allocates concurrently yet.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (in_jail, json) = match args.as_slice() {
        [flag, json] if flag == "--in-jail" => (true, json),
        [json] => (false, json),
        _ => {
            eprintln!("usage: hull-vmm [--in-jail] LAUNCH_JSON (`hull vm run` starts it)");
            std::process::exit(EXIT_VM_FAILED);
        }
    };
    let launch: Launch = match serde_json::from_str(json) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("hull-vmm: bad launch JSON: {e}");
            std::process::exit(EXIT_VM_FAILED);
        }
    };
    let remove = launch.api_dir.clone().filter(|_| launch.remove_api_dir);
    let code = run(launch, in_jail).unwrap_or_else(|e| {
        eprintln!("hull: {e:#}");
        EXIT_VM_FAILED
    });
    if let Some(dir) = remove {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(code);
}

fn run(launch: Launch, in_jail: bool) -> anyhow::Result<i32> {
    if let Some(path) = &launch.agent_socket {
        return run_for_monitor(&launch, path, in_jail);
    }
    let agent = launch.spec.is_some();
    if in_jail {
        jailed_setup(agent)?;
    }
    // Bound before the seccomp filter, which allows accept4 but not socket or bind.
    let api = launch
        .api_dir
        .as_ref()
        .map(|dir| {
            let path = dir.join(API_SOCKET);
            UnixListener::bind(&path)
                .with_context(|| format!("cannot make the API socket {}", path.display()))
        })
        .transpose()?;
    let console = ConsoleTail::default();
    // Without a command, the serial console and the virtio console (hvc0) both print here;
    // with one, stdout is the command's and the console is kept for a failure report.
    let consoles = match agent {
        false => Consoles {
            serial: Box::new(std::io::stdout()),
            virtio: Some(Box::new(std::io::stdout())),
        },
        true => Consoles {
            serial: Box::new(console.clone()),
            virtio: Some(Box::new(console.clone())),
        },
    };
    let vm = Vm::new(&launch.vm, consoles).context("cannot create the microVM")?;
    if in_jail {
        hull_vmm::seccomp::install()?;
    }
    let setup = vm.setup_time;
    let entry = match vm.kernel().entry {
        Entry::Pvh(_) => "PVH",
        Entry::Linux64(_) => "64-bit boot protocol",
    };
    let Some(spec) = launch.spec else {
        return run_console(vm, launch.stats, setup, entry);
    };
    let (code, report, ready) = relay::run(vm, spec, launch.interactive, &console, api)?;
    if launch.stats {
        print_stats(&report, setup, entry);
        if let Some(r) = ready {
            eprintln!(
                "hull vm: agent ready {:.1} ms after the start",
                r.as_secs_f64() * 1e3
            );
        }
    }
    Ok(code)
}

/// The VM of an engine container: its agent channel on the monitor's socket, its consoles on
/// stdout (the monitor's console log); the main process's exit code, or 125 without one.
fn run_for_monitor(launch: &Launch, path: &std::path::Path, in_jail: bool) -> anyhow::Result<i32> {
    if in_jail {
        jailed_setup(true)?;
    }
    let stream = socket::connect(path)?;
    let consoles = Consoles {
        serial: Box::new(std::io::stdout()),
        virtio: Some(Box::new(std::io::stdout())),
    };
    let mut cfg = launch.vm.clone();
    cfg.agent = true;
    let vm = Vm::new(&cfg, consoles).context("cannot create the microVM")?;
    if in_jail {
        hull_vmm::seccomp::install()?;
    }
    Ok(socket::run(vm, stream)?.unwrap_or(EXIT_VM_FAILED))
}

/// The first steps of the VMM in its jail: it dies with the `hull vm run` that made the jail
/// (whose kill -9 would otherwise leave it running). Being its pid namespace's init, which
/// ignores signals it has no handler for, a bare VM ends on SIGINT, SIGTERM and SIGHUP as a
/// plain process would; with a command (`agent`), those go on to the command instead.
fn jailed_setup(agent: bool) -> anyhow::Result<()> {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    extern "C" fn end(sig: libc::c_int) {
        // SAFETY: _exit is async-signal-safe and ends the process at once.
        unsafe { libc::_exit(128 + sig) }
    }
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL)
        .context("cannot set the parent-death signal")?;
    if agent {
        return Ok(());
    }
    let action = SigAction::new(SigHandler::Handler(end), SaFlags::empty(), SigSet::empty());
    for sig in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only calls _exit.
        unsafe { sigaction(sig, &action) }.context("cannot install a signal handler")?;
    }
    Ok(())
}

fn print_stats(report: &RunReport, setup: Duration, entry: &str) {
    let counts: Vec<String> = report
        .counters
        .snapshot()
        .into_iter()
        .map(|(name, n)| format!("{name}={n}"))
        .collect();
    eprintln!(
        "hull vm: stopped by {}; entry {entry}; setup {:.1} ms, run {:.1} ms; {} exits: {}",
        report.reason,
        setup.as_secs_f64() * 1e3,
        report.run_time.as_secs_f64() * 1e3,
        report.counters.total(),
        counts.join(" ")
    );
}

/// The bare VM: stdin types into ttyS0, the console prints on stdout.
fn run_console(mut vm: Vm, stats: bool, setup: Duration, entry: &str) -> anyhow::Result<i32> {
    // The thread ends at end of input; at the VM's end it is left blocked in read(2), and the
    // process exit ends it.
    let input = vm.serial_input();
    let _ = std::thread::Builder::new()
        .name("hull-vm-stdin".into())
        .spawn(move || {
            let mut buf = [0u8; 256];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n @ 1..) = std::io::Read::read(&mut stdin, &mut buf) {
                if input.send(&buf[..n]).is_err() {
                    break;
                }
            }
        });
    let report = vm.run().context("the microVM failed")?;
    if stats {
        print_stats(&report, setup, entry);
    }
    if let Some(e) = &report.console_error {
        eprintln!("hull vm: the guest console could not be written: {e}");
    }
    if report.reason == StopReason::Crash {
        bail!("the guest crashed");
    }
    Ok(0)
}
