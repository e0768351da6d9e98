//! hull-guest: PID 1 of a hull microVM. It mounts /proc, /sys and /dev, loads the kernel modules
//! the initramfs carries, opens the agent port (a virtio-console port named
//! `hull_vmproto::PORT_NAME`), takes the `Run` message, mounts the root disk, sets the hostname
//! and runs the main process, relaying its stdio, signals and exit over the port, and more
//! processes on `Exec`. When the main process ends it reboots, which ends the VM.

mod channel;
mod net;
mod procs;
mod security;
mod setup;
mod spawn;

use std::io::Write;

use hull_vmproto::{Message, MAIN_ID};

/// Writes to the kernel console (the VMM's serial log), the only place PID 1's own trouble
/// can go before the channel is up.
fn log(msg: &str) {
    if let Ok(mut c) = std::fs::OpenOptions::new().write(true).open("/dev/console") {
        let _ = writeln!(c, "hull-guest: {msg}");
    } else {
        eprintln!("hull-guest: {msg}");
    }
}

/// Ends the VM: with `reboot=k` the kernel resets through the i8042, which stops the VMM.
fn power_off() -> ! {
    // SAFETY: sync(2) takes no arguments.
    unsafe { libc::sync() };
    // SAFETY: reboot(2) with a valid command; PID 1 may call it. Only returns on failure.
    unsafe { libc::reboot(libc::RB_AUTOBOOT) };
    log("reboot failed; halting");
    loop {
        std::thread::park();
    }
}

fn run() -> anyhow::Result<()> {
    setup::early_mounts()?;
    setup::load_modules()?;
    let mut chan = channel::Channel::open()?;
    chan.send(&Message::Ready)?;
    let spec = match chan.recv()? {
        Some(Message::Run(spec)) => spec,
        Some(other) => anyhow::bail!("expected Run first, got {other:?}"),
        None => anyhow::bail!("the host closed the channel before Run"),
    };
    let root = match setup::root(&spec) {
        Ok(root) => root,
        Err(e) => {
            chan.send(&Message::Error {
                id: MAIN_ID,
                message: format!("{e:#}"),
            })?;
            return Err(e);
        }
    };
    procs::serve(chan, root, spec)
}

fn main() {
    if std::process::id() != 1 {
        eprintln!("hull-guest is the init of a hull microVM; it runs as PID 1 only");
        std::process::exit(2);
    }
    if let Err(e) = run() {
        log(&format!("{e:#}"));
    }
    power_off();
}
