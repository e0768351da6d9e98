//! `hull vm run ... -- CMD`: one command in a microVM through hull-guest. The command's stdout
//! and stderr come back apart over the agent channel and go to hull's; hull's stdin (with -i)
//! and the signals hull gets go to the command; hull exits with the command's code. The kernel's
//! serial console is kept (its last lines) and shown only when the VM ends without an exit.
//! With an API socket, `hull vm exec` clients run more processes (`api`); their output goes
//! to them. Each process's stdin is held to its window (`StdinWindows`).

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use std::os::unix::net::UnixListener;

use anyhow::Context;
use hull_vmm::proto::{Message, RunSpec, MAIN_ID, STDIN_WINDOW};
use hull_vmm::stdio::{forward_signals, forward_stdin, raw_terminal, send_window_size, ToGuest};
use hull_vmm::{AgentEvent, AgentSender, RunReport, Vm};

use crate::api::{self, Routes};

/// How much of the serial console is kept for a failure report.
const CONSOLE_TAIL: usize = 16 * 1024;
/// The last bytes of the guest's serial console.
#[derive(Debug, Clone, Default)]
pub struct ConsoleTail(Arc<Mutex<VecDeque<u8>>>);

impl ConsoleTail {
    fn text(&self) -> String {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        String::from_utf8_lossy(buf.make_contiguous()).into_owned()
    }
}

impl Write for ConsoleTail {
    fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
        let mut buf = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        buf.extend(d);
        let excess = buf.len().saturating_sub(CONSOLE_TAIL);
        buf.drain(..excess);
        Ok(d.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// What the relay saw.
#[derive(Debug, Default)]
struct Outcome {
    exit: Option<i32>,
    ready_after: Option<Duration>,
    errors: Vec<String>,
}

/// The stdin bytes of each process sent to the guest and not yet acknowledged
/// (`StdinConsumed`); a sender waits while a process has a whole window in flight, so the
/// VMM's buffers hold at most a window per process, whatever the input's size.
#[derive(Debug, Clone, Default)]
pub struct StdinWindows(Arc<(Mutex<HashMap<u32, usize>>, Condvar)>);

impl StdinWindows {
    /// Waits until `id` may have `n` more bytes in flight, and counts them.
    fn reserve(&self, id: u32, n: usize) {
        let (lock, cond) = &*self.0;
        let mut flight = lock.lock().unwrap_or_else(PoisonError::into_inner);
        while flight.get(&id).copied().unwrap_or(0) + n > STDIN_WINDOW.max(n) {
            flight = cond.wait(flight).unwrap_or_else(PoisonError::into_inner);
        }
        *flight.entry(id).or_default() += n;
    }

    /// The guest took `n` bytes of `id`'s stdin.
    pub(crate) fn release(&self, id: u32, n: usize) {
        let (lock, cond) = &*self.0;
        let mut flight = lock.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = flight.get_mut(&id) {
            *f = f.saturating_sub(n);
        }
        cond.notify_all();
    }

    /// `id` ended: nothing of its is in flight any more (the guest drops what it had).
    pub(crate) fn forget(&self, id: u32) {
        let (lock, cond) = &*self.0;
        lock.lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id);
        cond.notify_all();
    }
}

/// The agent port as a [`ToGuest`], with stdin held to each process's window.
pub fn to_agent(sender: AgentSender, windows: StdinWindows) -> ToGuest {
    Arc::new(move |m| {
        if let Message::Stdin { id, data } = m {
            windows.reserve(*id, data.len());
        }
        sender.send(m)
    })
}

/// The guest's next event; None once the VM has ended (`vm_done`: the VM's end does not close
/// the channel) and none is left.
pub(crate) fn next_event(
    events: &std::sync::mpsc::Receiver<AgentEvent>,
    vm_done: &AtomicBool,
) -> Option<AgentEvent> {
    use std::sync::mpsc::RecvTimeoutError;
    loop {
        match events.recv_timeout(Duration::from_millis(20)) {
            Ok(ev) => return Some(ev),
            Err(RecvTimeoutError::Timeout) if vm_done.load(Ordering::SeqCst) => {
                return events.try_recv().ok()
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return None,
        }
    }
}

fn relay(
    events: &std::sync::mpsc::Receiver<AgentEvent>,
    vm_done: &AtomicBool,
    start: Instant,
    routes: &Routes,
    windows: &StdinWindows,
) -> Outcome {
    let mut out = Outcome::default();
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    loop {
        let Some(ev) = next_event(events, vm_done) else {
            return out;
        };
        match &ev {
            AgentEvent::Message(Message::StdinConsumed { id, bytes }) => {
                windows.release(*id, *bytes as usize);
                continue;
            }
            AgentEvent::Message(Message::Exit { id, .. }) => windows.forget(*id),
            _ => {}
        }
        let ev = match ev {
            // The processes of `hull vm exec` clients: theirs to print.
            AgentEvent::Message(m) => match routes.deliver(m) {
                Some(m) => AgentEvent::Message(m),
                None => continue,
            },
            broken => broken,
        };
        match ev {
            AgentEvent::Message(Message::Stdout { data, .. }) => {
                // A closed stdout (hull ... | head) is the reader's choice; the VM goes on.
                let _ = stdout.write_all(&data).and_then(|()| stdout.flush());
            }
            AgentEvent::Message(Message::Stderr { data, .. }) => {
                let _ = stderr.write_all(&data).and_then(|()| stderr.flush());
            }
            AgentEvent::Message(Message::Exit {
                id: MAIN_ID,
                status,
            }) => {
                out.exit = Some(status.code());
            }
            AgentEvent::Message(Message::Ready) => out.ready_after = Some(start.elapsed()),
            AgentEvent::Message(Message::Error { message, .. }) => out.errors.push(message),
            AgentEvent::Message(_) => {}
            AgentEvent::Broken(e) => out.errors.push(format!("the agent channel broke: {e}")),
        }
    }
}

/// Runs the VM with `spec`; returns the command's exit code, and the run report for --stats.
pub fn run(
    mut vm: Vm,
    spec: RunSpec,
    interactive: bool,
    console: &ConsoleTail,
    api: Option<UnixListener>,
) -> anyhow::Result<(i32, RunReport, Option<Duration>)> {
    let agent = vm.take_agent().context("the VM has no agent channel")?;
    let tty = spec.process.terminal;
    let windows = StdinWindows::default();
    let to = to_agent(agent.sender.clone(), windows.clone());
    forward_signals(to.clone(), MAIN_ID, tty).context("cannot forward signals")?;
    let raw = raw_terminal(tty).context("cannot make the terminal raw")?;
    agent.sender.send(&Message::Run(spec));
    if tty {
        send_window_size(&to, MAIN_ID);
    }
    if forward_stdin(to.clone(), MAIN_ID, interactive).is_err() {
        eprintln!("hull vm: cannot start the stdin thread; the command's stdin is closed");
        to(&Message::StdinClose { id: MAIN_ID });
    }
    let routes = Routes::default();
    if let Some(listener) = api {
        api::serve(listener, to, routes.clone())?;
    }
    let vm_done = Arc::new(AtomicBool::new(false));
    let done = Arc::clone(&vm_done);
    let start = Instant::now();
    let vm_thread = std::thread::Builder::new()
        .name("hull-vm".into())
        .spawn(move || {
            let report = vm.run();
            done.store(true, Ordering::SeqCst);
            report
        })
        .context("cannot start the VM thread")?;
    let outcome = relay(&agent.events, &vm_done, start, &routes, &windows);
    drop(raw);
    let report = vm_thread
        .join()
        .map_err(|_| anyhow::anyhow!("the VM thread panicked"))?
        .context("the microVM failed")?;
    for e in &outcome.errors {
        eprintln!("hull vm: {e}");
    }
    match outcome.exit {
        Some(code) => Ok((code, report, outcome.ready_after)),
        None => {
            let tail = console.text();
            eprintln!("hull vm: the guest's console ended with:\n{tail}");
            anyhow::bail!(
                "the VM stopped ({}) before the command reported its exit",
                report.reason
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sender_waits_while_a_window_is_in_flight_and_goes_on_when_acknowledged() {
        let w = StdinWindows::default();
        w.reserve(1, STDIN_WINDOW);
        // Another process has a window of its own.
        w.reserve(2, 10);
        let (tx, rx) = std::sync::mpsc::channel();
        let w2 = w.clone();
        let t = std::thread::spawn(move || {
            w2.reserve(1, 100);
            tx.send(()).unwrap();
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(200)).is_err(),
            "sent beyond the window"
        );
        w.release(1, 99);
        assert!(rx.recv_timeout(Duration::from_millis(200)).is_err());
        w.release(1, 1);
        rx.recv_timeout(Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        // An ended process's window is gone: a late sender is not held.
        w.forget(1);
        w.reserve(1, STDIN_WINDOW);
    }
}
