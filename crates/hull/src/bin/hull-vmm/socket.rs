//! The agent channel on a unix socket (`Launch::agent_socket`), for the engine's monitor of a
//! VM-isolated container (`hull run --isolation vm --vmm hull`): the monitor speaks
//! hull-vmproto itself, as it does through qemu's chardev, so this VMM passes frames both ways
//! and only holds each process's stdin to its window (`relay::StdinWindows`), which bounds its
//! buffers whatever the monitor sends. The VM ends when the guest resets (hull-guest does once
//! its main process ended) or when the monitor kills this process; the monitor's end of the
//! socket closing stops nothing.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use anyhow::Context;
use hull_vmm::proto::{Decoder, Message, MAIN_ID, MAX_CHUNK};
use hull_vmm::stdio::ToGuest;
use hull_vmm::{AgentEvent, Vm};

use crate::relay::{self, StdinWindows};

/// The socket's side of the channel: connected before the seccomp filter, which allows no
/// `socket` or `connect`.
pub fn connect(path: &Path) -> anyhow::Result<UnixStream> {
    UnixStream::connect(path)
        .with_context(|| format!("cannot connect the agent channel to {}", path.display()))
}

/// Runs the VM with its agent channel on `stream`; the main process's exit code, or None when
/// the VM ended without one.
pub fn run(mut vm: Vm, stream: UnixStream) -> anyhow::Result<Option<i32>> {
    let agent = vm.take_agent().context("the VM has no agent channel")?;
    let windows = StdinWindows::default();
    let to = relay::to_agent(agent.sender.clone(), windows.clone());
    let reader = stream
        .try_clone()
        .context("cannot clone the agent socket")?;
    // Left blocked (in read, or waiting for a window) when the VM ends: the exit ends it.
    std::thread::Builder::new()
        .name("hull-vm-from-host".into())
        .spawn(move || from_host(reader, &to))
        .context("cannot start the agent socket's reader")?;
    let events = agent.events;
    let vm_done = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&vm_done);
    let sender = std::thread::Builder::new()
        .name("hull-vm-to-host".into())
        .spawn(move || to_host(&events, stream, &windows, &done))
        .context("cannot start the agent socket's writer")?;
    let report = vm.run().context("the microVM failed");
    // The guest's last frames are in the channel (which the VM's end does not close): the
    // writer sends them, then ends.
    vm_done.store(true, Ordering::SeqCst);
    let exit = sender
        .join()
        .map_err(|_| anyhow::anyhow!("the agent socket's writer panicked"))?;
    report?;
    Ok(exit)
}

/// The monitor's frames to the guest, until its socket closes or sends what is not a frame.
fn from_host(mut stream: UnixStream, to: &ToGuest) {
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; MAX_CHUNK];
    while let Ok(n @ 1..) = stream.read(&mut buf) {
        decoder.push(&buf[..n]);
        loop {
            match decoder.next() {
                Ok(Some(m)) => to(&m),
                Ok(None) => break,
                Err(e) => {
                    eprintln!("hull vm: the monitor sent a broken frame: {e}");
                    return;
                }
            }
        }
    }
}

/// The guest's frames to the monitor, until the VM has ended and they are all sent; the main
/// process's exit code, if it came.
fn to_host(
    events: &std::sync::mpsc::Receiver<AgentEvent>,
    mut stream: UnixStream,
    windows: &StdinWindows,
    vm_done: &AtomicBool,
) -> Option<i32> {
    let mut exit = None;
    while let Some(ev) = relay::next_event(events, vm_done) {
        let m = match ev {
            AgentEvent::Message(m) => m,
            AgentEvent::Broken(e) => {
                eprintln!("hull vm: the agent channel broke: {e}");
                break;
            }
        };
        match &m {
            Message::StdinConsumed { id, bytes } => {
                windows.release(*id, *bytes as usize);
            }
            Message::Exit { id, status } => {
                windows.forget(*id);
                if *id == MAIN_ID {
                    exit = Some(status.code());
                }
            }
            _ => {}
        }
        // A monitor that went away no longer reads; the VM runs on until it is killed.
        let _ = stream.write_all(&m.encode());
    }
    exit
}
