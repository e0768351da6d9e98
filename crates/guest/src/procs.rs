//! The processes the host runs in the guest and the loop that serves them: their stdio relayed
//! as frames (stdin buffered so a process that does not read cannot stall the agent, and
//! acknowledged as it leaves the buffer: the host sends no more than a window ahead), signals
//! passed on, children reaped (PID 1 reaps every orphan too), and an `Exit` sent once a process
//! has ended and its stdout and stderr are drained. The loop ends with the main process.

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsFd;
use std::path::PathBuf;

use anyhow::Context;
use hull_vmproto::{ExitStatus, Message, ProcessSpec, RunSpec, MAIN_ID, MAX_CHUNK};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;

use crate::channel::Channel;
use crate::spawn::{spawn, spawn_failure_code, Proc};

#[derive(Debug, Clone, Copy)]
enum Source {
    Channel,
    Signals,
    Stdin(u32),
    Stdout(u32),
    Stderr(u32),
}

struct Agent {
    chan: Channel,
    root: PathBuf,
    procs: BTreeMap<u32, Proc>,
}

impl Agent {
    fn start(&mut self, id: u32, spec: &ProcessSpec) -> anyhow::Result<()> {
        if self.procs.contains_key(&id) {
            return self.chan.send(&Message::Error {
                id,
                message: format!("process id {id} is in use"),
            });
        }
        match spawn(&self.root, spec) {
            Ok(p) => {
                self.procs.insert(id, p);
                self.chan.send(&Message::Started { id })
            }
            Err(e) => {
                self.chan.send(&Message::Error {
                    id,
                    message: format!("{e:#}"),
                })?;
                let status = ExitStatus::Code(spawn_failure_code(&e));
                self.chan.send(&Message::Exit { id, status })?;
                if id == MAIN_ID {
                    anyhow::bail!("the main process did not start: {e:#}");
                }
                Ok(())
            }
        }
    }

    fn on_message(&mut self, m: Message) -> anyhow::Result<()> {
        match m {
            Message::Exec { id, spec } => self.start(id, &spec)?,
            Message::Stdin { id, data } => match self.procs.get_mut(&id) {
                Some(p) if p.stdin.is_some() => {
                    p.stdin_buf.extend_from_slice(&data);
                    self.flush_stdin(id)?;
                }
                // Nobody to read it: consumed at once, so the host's window stays open.
                _ => self.consumed(id, data.len())?,
            },
            Message::StdinClose { id } => {
                if let Some(p) = self.procs.get_mut(&id) {
                    p.stdin_close = true;
                    self.flush_stdin(id)?;
                }
            }
            Message::Signal { id, signal } => {
                let p = self.procs.get(&id).filter(|p| p.status.is_none());
                if let (Some(p), Ok(sig)) = (p, Signal::try_from(signal)) {
                    // The process may just have ended: nothing to signal then.
                    let _ = kill(p.pid, sig);
                }
            }
            Message::Resize { id, rows, cols } => {
                // Only a terminal has a size; a resize of another process means nothing.
                let pty = self.procs.get(&id).and_then(|p| p.pty.as_ref());
                if let Some(pty) = pty {
                    // The process may have ended and taken the terminal with it.
                    let _ = hull_sys::pty::set_window_size(pty.as_fd(), rows, cols);
                }
            }
            other => {
                self.chan.send(&Message::Error {
                    id: MAIN_ID,
                    message: format!("unexpected message from the host: {other:?}"),
                })?;
            }
        }
        Ok(())
    }

    /// Tells the host `n` bytes of `id`'s stdin left the agent (its flow-control credit).
    fn consumed(&mut self, id: u32, n: usize) -> anyhow::Result<()> {
        if n == 0 {
            return Ok(());
        }
        let bytes = u32::try_from(n).unwrap_or(u32::MAX);
        self.chan.send(&Message::StdinConsumed { id, bytes })
    }

    /// Writes what stdin holds without blocking; closes it when asked and drained. What left
    /// the buffer, written or dropped, is acknowledged to the host.
    fn flush_stdin(&mut self, id: u32) -> anyhow::Result<()> {
        let Some(p) = self.procs.get_mut(&id) else {
            return Ok(());
        };
        let before = p.stdin_buf.len();
        if let Some(stdin) = &mut p.stdin {
            while !p.stdin_buf.is_empty() {
                match stdin.write(&p.stdin_buf) {
                    Ok(n) => {
                        p.stdin_buf.drain(..n);
                    }
                    Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                    Err(_) => {
                        // The process closed its stdin: what it did not read is dropped.
                        p.stdin = None;
                        break;
                    }
                }
            }
        }
        if p.stdin.is_none() {
            p.stdin_buf.clear();
        } else if p.stdin_close && p.stdin_buf.is_empty() {
            p.stdin = None;
        }
        let done = before - p.stdin_buf.len();
        self.consumed(id, done)
    }

    fn read_output(&mut self, id: u32, stderr: bool) -> anyhow::Result<()> {
        let Some(p) = self.procs.get_mut(&id) else {
            return Ok(());
        };
        let mut buf = vec![0u8; MAX_CHUNK];
        let n = if stderr {
            p.stderr.as_mut().map(|s| s.read(&mut buf))
        } else {
            p.stdout.as_mut().map(|s| s.read(&mut buf))
        };
        match n {
            // A pty master shares its O_NONBLOCK with the stdin end: nothing there after all.
            Some(Err(e)) if e.kind() == ErrorKind::WouldBlock => Ok(()),
            Some(Ok(0)) | Some(Err(_)) => {
                if stderr {
                    p.stderr = None;
                } else {
                    p.stdout = None;
                }
                Ok(())
            }
            Some(Ok(n)) => {
                let data = buf[..n].to_vec();
                let m = if stderr {
                    Message::Stderr { id, data }
                } else {
                    Message::Stdout { id, data }
                };
                self.chan.send(&m)
            }
            None => Ok(()),
        }
    }

    fn reap(&mut self) -> anyhow::Result<()> {
        loop {
            match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.ended(pid, ExitStatus::Code(code))?,
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.ended(pid, ExitStatus::Signal(sig as i32))?
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return Ok(()),
                Ok(_) => {}
            }
        }
    }

    /// Records the exit of `pid`; the stdin it will never read is dropped (and acknowledged).
    fn ended(&mut self, pid: Pid, status: ExitStatus) -> anyhow::Result<()> {
        let Some((id, p)) = self.procs.iter_mut().find(|(_, p)| p.pid == pid) else {
            return Ok(());
        };
        let id = *id;
        p.status = Some(status);
        p.stdin = None;
        self.flush_stdin(id)
    }

    /// Reports processes that ended and whose output is drained; true once the main one has.
    fn report_exits(&mut self) -> anyhow::Result<bool> {
        let done: Vec<(u32, ExitStatus)> = self
            .procs
            .iter()
            .filter(|(_, p)| p.stdout.is_none() && p.stderr.is_none())
            .filter_map(|(id, p)| p.status.map(|s| (*id, s)))
            .collect();
        let mut main_done = false;
        for (id, status) in done {
            self.procs.remove(&id);
            self.chan.send(&Message::Exit { id, status })?;
            main_done |= id == MAIN_ID;
        }
        Ok(main_done)
    }

    /// One round: wait for something to happen, then handle it. True when the main process
    /// has ended and been reported.
    fn step(&mut self, sigfd: &SignalFd) -> anyhow::Result<bool> {
        let mut sources = vec![Source::Channel, Source::Signals];
        let mut fds = vec![
            PollFd::new(self.chan.fd(), PollFlags::POLLIN),
            PollFd::new(sigfd.as_fd(), PollFlags::POLLIN),
        ];
        for (id, p) in &self.procs {
            if let Some(s) = p.stdin.as_ref().filter(|_| !p.stdin_buf.is_empty()) {
                sources.push(Source::Stdin(*id));
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLOUT));
            }
            if let Some(s) = &p.stdout {
                sources.push(Source::Stdout(*id));
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
            if let Some(s) = &p.stderr {
                sources.push(Source::Stderr(*id));
                fds.push(PollFd::new(s.as_fd(), PollFlags::POLLIN));
            }
        }
        match poll(&mut fds, PollTimeout::NONE) {
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => return Ok(false),
            Err(e) => return Err(e).context("poll"),
        }
        let ready: Vec<Source> = sources
            .into_iter()
            .zip(&fds)
            .filter(|(_, fd)| fd.revents().is_some_and(|r| !r.is_empty()))
            .map(|(s, _)| s)
            .collect();
        drop(fds);
        for s in ready {
            match s {
                Source::Channel => {
                    if !self.chan.fill()? {
                        anyhow::bail!("the host closed the agent channel");
                    }
                    while let Some(m) = self.chan.buffered()? {
                        self.on_message(m)?;
                    }
                }
                Source::Signals => {
                    while let Ok(Some(_)) = sigfd.read_signal() {}
                    self.reap()?;
                }
                Source::Stdin(id) => self.flush_stdin(id)?,
                Source::Stdout(id) => self.read_output(id, false)?,
                Source::Stderr(id) => self.read_output(id, true)?,
            }
        }
        self.report_exits()
    }
}

/// Runs the main process of `spec` in `root` and serves the host until it ends.
pub fn serve(chan: Channel, root: PathBuf, spec: RunSpec) -> anyhow::Result<()> {
    let mut mask = SigSet::empty();
    mask.add(Signal::SIGCHLD);
    mask.thread_block().context("cannot block SIGCHLD")?;
    let sigfd = SignalFd::with_flags(&mask, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
        .context("cannot make a signalfd")?;
    let mut agent = Agent {
        chan,
        root,
        procs: BTreeMap::new(),
    };
    agent.start(MAIN_ID, &spec.process)?;
    // What the host sent right behind Run (stdin, a signal) may already be in the decoder, read
    // with Run: no poll would ever report it.
    while let Some(m) = agent.chan.buffered()? {
        agent.on_message(m)?;
    }
    while !agent.step(&sigfd)? {}
    Ok(())
}
