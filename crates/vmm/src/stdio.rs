//! The terminal end of a guest process, shared by the VMM (the main process, on the VMM's own
//! stdio) and `hull vm exec` (a process through the API socket): stdin passed on as frames,
//! the signals hull gets passed on as docker's sig-proxy does, the window size, and the caller's
//! terminal in raw mode while a guest terminal runs.

use std::os::fd::AsFd;
use std::sync::Arc;

use hull_sys::pty;
use nix::sys::signal::{SigSet, Signal};

use crate::proto::{Message, MAX_CHUNK};

/// Where messages to the guest go: the agent port, or the socket of `hull vm exec`.
pub type ToGuest = Arc<dyn Fn(&Message) + Send + Sync>;

/// Passes this process's stdin (with `interactive`) to process `id`, then closes its stdin.
/// Without a thread to read it, the process's stdin is closed at once.
pub fn forward_stdin(to: ToGuest, id: u32, interactive: bool) -> std::io::Result<()> {
    if !interactive {
        to(&Message::StdinClose { id });
        return Ok(());
    }
    // The thread ends at end of input; at the VM's end it is left blocked in read(2) (or in the
    // stdin window), and the process exit ends it.
    std::thread::Builder::new()
        .name("hull-vm-stdin".into())
        .spawn(move || {
            let mut buf = vec![0u8; MAX_CHUNK];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n @ 1..) = std::io::Read::read(&mut stdin, &mut buf) {
                to(&Message::Stdin {
                    id,
                    data: buf[..n].to_vec(),
                });
            }
            to(&Message::StdinClose { id });
        })
        .map(drop)
}

/// The size of this process's terminal (stdout's, else stdin's), if it has one.
fn window_size() -> Option<(u16, u16)> {
    [std::io::stdout().as_fd(), std::io::stdin().as_fd()]
        .into_iter()
        .find_map(|fd| pty::window_size(fd).filter(|(rows, _)| *rows > 0))
}

/// Sends this terminal's size to process `id`'s, if there is one.
pub fn send_window_size(to: &ToGuest, id: u32) {
    if let Some((rows, cols)) = window_size() {
        to(&Message::Resize { id, rows, cols });
    }
}

/// This process's stdin terminal in raw mode for a run on a guest terminal (keys go to the
/// guest's terminal, which echoes and edits), restored when the guard drops; None when there is
/// no guest terminal or stdin is not a terminal.
pub fn raw_terminal(tty: bool) -> nix::Result<Option<pty::RawMode>> {
    if !tty {
        return Ok(None);
    }
    pty::RawMode::enter(std::io::stdin().as_fd())
}

/// Blocks the forwarded signals (and SIGWINCH, with a terminal) in this (still single) thread,
/// so every thread started later has them blocked too and only the forwarding thread takes them,
/// with sigwait. A new window size goes to process `id`'s terminal, the others to it.
pub fn forward_signals(to: ToGuest, id: u32, tty: bool) -> std::io::Result<()> {
    let mut set = SigSet::empty();
    for s in pty::FORWARDED_SIGNALS {
        set.add(s);
    }
    if tty {
        set.add(Signal::SIGWINCH);
    }
    set.thread_block()?;
    std::thread::Builder::new()
        .name("hull-vm-signals".into())
        .spawn(move || {
            while let Ok(sig) = set.wait() {
                if sig == Signal::SIGWINCH {
                    send_window_size(&to, id);
                    continue;
                }
                to(&Message::Signal {
                    id,
                    signal: sig as i32,
                });
            }
        })
        .map(drop)
}
