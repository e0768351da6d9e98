//! The monitor's poll loop over a running container's stdio: its output (stdout and stderr
//! pipes, or a pty's master) to the log and to every attached client, clients' input to its
//! stdin (a pipe, or the master) when it was made with `-i`, clients' window sizes to its pty.
//! One thread: everything is non-blocking, and a client that does not keep up holds the
//! container's output back (as docker's attach does) rather than losing it.

use std::collections::VecDeque;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{accept4, recv, send, MsgFlags, SockFlag};

use crate::attach::{self, CHUNK, EXIT, RESIZE, STDERR, STDIN, STDIN_EOF, STDOUT};
use crate::error::EngineError;
use crate::logs::{LogWriter, Stream};

/// Bytes queued for one client beyond which the container's output waits.
const QUEUE_CAP: usize = 1 << 20;

/// How long clients get to read the exit status and what is left of the output.
const FINISH: Duration = Duration::from_secs(5);

/// How long after the start the relay runs its caller's idle work, if the container still runs.
const IDLE_AFTER: Duration = Duration::from_millis(100);

/// Where the container's output comes from.
#[derive(Debug)]
pub(super) enum Source {
    Pipes { out: OwnedFd, err: OwnedFd },
    Pty(OwnedFd),
}

/// The container's side: its output, and its input with what clients sent not yet written.
#[derive(Debug)]
pub(super) struct Io {
    source: Source,
    /// Output sources still open (stdout and stderr; or the master).
    open: [bool; 2],
    /// The write end of the stdin pipe of a container made with `-i` and no terminal.
    stdin: Option<OwnedFd>,
    pending: Vec<u8>,
    /// A client's stdin ended: close the container's once `pending` is written.
    close_stdin: bool,
}

impl Io {
    pub(super) fn new(source: Source, stdin: Option<OwnedFd>) -> Io {
        let fds: Vec<BorrowedFd<'_>> = match &source {
            Source::Pipes { .. } => stdin.iter().map(AsFd::as_fd).collect(),
            Source::Pty(master) => vec![master.as_fd()],
        };
        for fd in fds {
            let _ = fcntl(fd, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        }
        let open = match source {
            Source::Pipes { .. } => [true, true],
            Source::Pty(_) => [true, false],
        };
        Io {
            source,
            open,
            stdin,
            pending: Vec::new(),
            close_stdin: false,
        }
    }

    /// Where clients' input goes: the stdin pipe, or the master.
    fn input(&self) -> Option<BorrowedFd<'_>> {
        match &self.source {
            Source::Pty(master) => Some(master.as_fd()),
            Source::Pipes { .. } => self.stdin.as_ref().map(AsFd::as_fd),
        }
    }

    fn output(&self, i: usize) -> BorrowedFd<'_> {
        match (&self.source, i) {
            (Source::Pty(master), _) => master.as_fd(),
            (Source::Pipes { out, .. }, 0) => out.as_fd(),
            (Source::Pipes { err, .. }, _) => err.as_fd(),
        }
    }

    /// Writes what it can of `pending` to the container's input.
    fn write_input(&mut self) {
        while !self.pending.is_empty() {
            let Some(fd) = self.input() else {
                self.pending.clear();
                break;
            };
            match nix::unistd::write(fd, &self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                // The container closed its stdin: what it will never read is dropped.
                Err(_) => {
                    self.pending.clear();
                    self.stdin = None;
                }
            }
        }
        if self.close_stdin {
            self.stdin = None;
        }
    }
}

#[derive(Debug)]
struct Client {
    conn: OwnedFd,
    queue: VecDeque<Vec<u8>>,
    queued: usize,
    dead: bool,
}

impl Client {
    fn push(&mut self, message: Vec<u8>) {
        self.queued += message.len();
        self.queue.push_back(message);
        self.flush();
    }

    /// Sends what the socket takes now.
    fn flush(&mut self) {
        while let Some(m) = self.queue.front() {
            match send(
                self.conn.as_raw_fd(),
                m,
                MsgFlags::MSG_DONTWAIT | MsgFlags::MSG_NOSIGNAL,
            ) {
                Ok(_) => {
                    self.queued -= m.len();
                    self.queue.pop_front();
                }
                Err(Errno::EINTR) => {}
                Err(Errno::EAGAIN) => return,
                Err(_) => {
                    self.dead = true;
                    return;
                }
            }
        }
    }
}

/// What one poll slot is.
#[derive(Debug, Clone, Copy)]
enum Slot {
    Listener,
    Output(usize),
    Input,
    Client(usize),
}

/// The attach socket and its clients.
#[derive(Debug)]
pub(super) struct Relay {
    listener: OwnedFd,
    /// Whether the listener is bound and listening ([`Relay::listen`]).
    listening: bool,
    clients: Vec<Client>,
    interactive: bool,
}

impl Relay {
    pub(super) fn new(listener: OwnedFd, interactive: bool) -> Relay {
        Relay {
            listener,
            listening: false,
            clients: Vec::new(),
            interactive,
        }
    }

    /// Names the listener as container `id`'s attach socket, once (a restart keeps it).
    pub(super) fn listen(&mut self, root: &Path, id: &str) -> Result<(), EngineError> {
        if !self.listening {
            crate::attach::listen(&self.listener, root, id)?;
            self.listening = true;
        }
        Ok(())
    }

    /// A client connected already (a starter's socket pair).
    pub(super) fn add(&mut self, conn: OwnedFd) {
        let _ = fcntl(&conn, FcntlArg::F_SETFL(OFlag::O_NONBLOCK));
        self.clients.push(Client {
            conn,
            queue: VecDeque::new(),
            queued: 0,
            dead: false,
        });
    }

    /// Relays until the container's output is closed (its processes are gone).
    pub(super) fn run(&mut self, io: &mut Io, log: &mut LogWriter) {
        self.run_then_idle(io, log, None);
    }

    /// [`Relay::run`], and `idle` once [`IDLE_AFTER`] after the start if the container's output
    /// is still open then: work for a monitor whose container runs, which a short container's
    /// exit must not wait for.
    pub(super) fn run_then_idle(
        &mut self,
        io: &mut Io,
        log: &mut LogWriter,
        mut idle: Option<&mut dyn FnMut()>,
    ) {
        // A client's message is a kind byte and up to CHUNK bytes: a smaller buffer would cut
        // the datagram short, silently (SOCK_SEQPACKET drops what does not fit).
        let mut buf = vec![0u8; CHUNK + 1];
        let mut idle_at = idle.is_some().then(|| Instant::now() + IDLE_AFTER);
        while io.open.iter().any(|o| *o) {
            if idle_at.is_some_and(|at| at <= Instant::now()) {
                idle_at = None;
                if let Some(work) = idle.take() {
                    work();
                }
            }
            let held = self.clients.iter().any(|c| c.queued >= QUEUE_CAP);
            let mut slots = vec![Slot::Listener];
            let mut fds = vec![PollFd::new(self.listener.as_fd(), PollFlags::POLLIN)];
            for i in 0..2 {
                if io.open[i] && !held {
                    slots.push(Slot::Output(i));
                    fds.push(PollFd::new(io.output(i), PollFlags::POLLIN));
                }
            }
            if !io.pending.is_empty() {
                if let Some(fd) = io.input() {
                    slots.push(Slot::Input);
                    fds.push(PollFd::new(fd, PollFlags::POLLOUT));
                }
            }
            for (i, c) in self.clients.iter().enumerate() {
                let mut flags = PollFlags::empty();
                if io.pending.is_empty() {
                    flags |= PollFlags::POLLIN;
                }
                if !c.queue.is_empty() {
                    flags |= PollFlags::POLLOUT;
                }
                slots.push(Slot::Client(i));
                fds.push(PollFd::new(c.conn.as_fd(), flags));
            }
            let timeout = idle_at.map_or(PollTimeout::NONE, |at| {
                let left = at.saturating_duration_since(Instant::now()).as_millis();
                PollTimeout::from(u16::try_from(left).unwrap_or(u16::MAX))
            });
            match poll(&mut fds, timeout) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(_) => return,
            }
            let ready: Vec<(Slot, PollFlags)> = slots
                .into_iter()
                .zip(
                    fds.iter()
                        .map(|p| p.revents().unwrap_or(PollFlags::empty())),
                )
                .filter(|(_, r)| !r.is_empty())
                .collect();
            drop(fds);
            for (slot, revents) in ready {
                match slot {
                    Slot::Listener => self.accept(),
                    Slot::Output(i) => self.output(io, i, log, &mut buf),
                    Slot::Input => io.write_input(),
                    Slot::Client(i) => self.client_ready(i, revents, io, &mut buf),
                }
            }
            self.clients.retain(|c| !c.dead);
        }
    }

    fn accept(&mut self) {
        while let Ok(conn) = accept4(
            &self.listener,
            SockFlag::SOCK_CLOEXEC | SockFlag::SOCK_NONBLOCK,
        ) {
            self.add(conn);
        }
    }

    fn output(&mut self, io: &mut Io, i: usize, log: &mut LogWriter, buf: &mut [u8]) {
        let n = match nix::unistd::read(io.output(i), &mut buf[..CHUNK]) {
            Err(Errno::EINTR | Errno::EAGAIN) => return,
            // EOF, or EIO from a master whose slave is closed everywhere.
            Ok(0) | Err(_) => {
                io.open[i] = false;
                return;
            }
            Ok(n) => n,
        };
        let data = &buf[..n];
        let (stream, kind) = if i == 0 {
            (Stream::Stdout, STDOUT)
        } else {
            (Stream::Stderr, STDERR)
        };
        log.write(stream, data);
        for c in &mut self.clients {
            c.push(attach::frame(kind, data));
        }
    }

    fn client_ready(&mut self, i: usize, revents: PollFlags, io: &mut Io, buf: &mut [u8]) {
        let client = &mut self.clients[i];
        if revents.contains(PollFlags::POLLOUT) {
            client.flush();
        }
        if !revents.intersects(PollFlags::POLLIN | PollFlags::POLLHUP | PollFlags::POLLERR) {
            return;
        }
        let n = match recv(client.conn.as_raw_fd(), buf, MsgFlags::MSG_DONTWAIT) {
            Err(Errno::EINTR | Errno::EAGAIN) => return,
            // Gone (detached, or killed): the container goes on.
            Ok(0) | Err(_) => {
                client.dead = true;
                return;
            }
            Ok(n) => n,
        };
        let (kind, data) = (buf[0], &buf[1..n]);
        match kind {
            STDIN if self.interactive => {
                io.pending.extend_from_slice(data);
                io.write_input();
            }
            STDIN_EOF if self.interactive && matches!(io.source, Source::Pipes { .. }) => {
                io.close_stdin = true;
                io.write_input();
            }
            RESIZE => {
                if let (Source::Pty(master), Some((rows, cols))) =
                    (&io.source, attach::parse_resize(data))
                {
                    let _ = hull_sys::pty::set_window_size(master.as_fd(), rows, cols);
                }
            }
            _ => {}
        }
    }

    /// Sends every client the exit status after what is left of the output, giving them a
    /// while to read it; then lets them go (the listener stays, for the next run).
    pub(super) fn finish(&mut self, code: i32) {
        for c in &mut self.clients {
            c.push(attach::frame(EXIT, &code.to_le_bytes()));
        }
        let deadline = Instant::now() + FINISH;
        loop {
            self.clients.retain(|c| !c.dead && !c.queue.is_empty());
            let left = deadline.saturating_duration_since(Instant::now());
            if self.clients.is_empty() || left.is_zero() {
                self.clients.clear();
                return;
            }
            let mut fds: Vec<PollFd<'_>> = self
                .clients
                .iter()
                .map(|c| PollFd::new(c.conn.as_fd(), PollFlags::POLLOUT))
                .collect();
            let ms = u16::try_from(left.as_millis()).unwrap_or(u16::MAX);
            if poll(&mut fds, PollTimeout::from(ms)).is_err() {
                drop(fds);
                self.clients.clear();
                return;
            }
            drop(fds);
            for c in &mut self.clients {
                c.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nix::sys::socket::{socketpair, AddressFamily, SockType};
    use nix::unistd::pipe;

    /// A relay over two pipes whose write ends are closed after `open_for`; whether its idle
    /// work ran.
    fn idle_ran(open_for: Duration) -> bool {
        let (listener, _peer) = socketpair(
            AddressFamily::Unix,
            SockType::SeqPacket,
            None,
            SockFlag::SOCK_CLOEXEC,
        )
        .unwrap();
        let (out_r, out_w) = pipe().unwrap();
        let (err_r, err_w) = pipe().unwrap();
        let dir = std::env::temp_dir().join(format!("hull-relay-idle-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let log_path = dir.join(format!("{}.log", open_for.as_millis()));
        let mut log = LogWriter::create(&log_path, crate::log_opts::LogOptions::default()).unwrap();
        let writer = std::thread::spawn(move || {
            std::thread::sleep(open_for);
            drop((out_w, err_w));
        });
        let mut io = Io::new(
            Source::Pipes {
                out: out_r,
                err: err_r,
            },
            None,
        );
        let mut ran = false;
        Relay::new(listener, false).run_then_idle(&mut io, &mut log, Some(&mut || ran = true));
        writer.join().unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        ran
    }

    #[test]
    fn idle_work_waits_for_a_container_that_runs_on() {
        assert!(
            !idle_ran(Duration::ZERO),
            "a container that is done at once"
        );
        assert!(
            idle_ran(IDLE_AFTER * 2),
            "a container that runs past IDLE_AFTER"
        );
    }
}
