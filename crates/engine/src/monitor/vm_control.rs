//! The monitor's end of a VM's control socket (`crate::vm::control`): signals for the main
//! process, and `exec` sessions. An exec session is the connection itself: after its request
//! line it carries hull-vmproto frames both ways, the client's `Exec`, stdin and signals to the
//! agent under an id the monitor gives the process, and the agent's frames about that process
//! back to the client ([`Routes`]), so `hull exec` speaks the agent's own protocol.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use hull_vmm::proto::{Decoder, Message, MAIN_ID, MAX_CHUNK};

use crate::vm::control::Request;

/// The agent channel's writing end, shared by the threads that send.
#[derive(Debug, Clone)]
pub struct AgentSender(pub Arc<Mutex<UnixStream>>);

impl AgentSender {
    pub fn send(&self, m: &Message) {
        let mut s = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // A broken channel is seen by the reader, which ends the run.
        let _ = s.write_all(&m.encode());
    }
}

/// What the agent's channel says of the container's main process, in the order it says it.
#[derive(Debug)]
pub enum MainFrame {
    Stdout(Vec<u8>),
    Stderr(Vec<u8>),
    /// The agent is up and waits for the run.
    Ready,
    Started,
    /// The main process ended; `error` is the agent's last word on it, if any.
    Exit {
        code: i32,
        error: Option<String>,
    },
}

/// Reads the agent's frames until the channel closes (the VM ended): those of exec sessions go
/// to their clients through `routes`, the main process's to `on`. Returns the agent's error that
/// no exit carried (why the main process never ran, say).
pub fn read_main_frames(
    mut stream: UnixStream,
    routes: &Routes,
    mut on: impl FnMut(MainFrame),
) -> Option<String> {
    let mut decoder = Decoder::default();
    let mut error = None;
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        while let Ok(Some(m)) = decoder.next() {
            if routes.forward(&m) {
                continue;
            }
            match m {
                Message::Stdout { id: MAIN_ID, data } => on(MainFrame::Stdout(data)),
                Message::Stderr { id: MAIN_ID, data } => on(MainFrame::Stderr(data)),
                Message::Ready => on(MainFrame::Ready),
                Message::Started { id: MAIN_ID } => on(MainFrame::Started),
                Message::Error {
                    id: MAIN_ID,
                    message,
                } => error = Some(message),
                Message::Exit {
                    id: MAIN_ID,
                    status,
                } => on(MainFrame::Exit {
                    code: status.code(),
                    error: error.take(),
                }),
                _ => {}
            }
        }
        match stream.read(&mut buf) {
            Ok(n @ 1..) => decoder.push(&buf[..n]),
            _ => return error,
        }
    }
}

/// The exec sessions by the id of their process in the guest.
#[derive(Debug, Clone, Default)]
pub struct Routes(Arc<Mutex<HashMap<u32, UnixStream>>>);

impl Routes {
    /// Passes a frame of the agent about an exec'd process to its session; true when it was
    /// one. A client gone meanwhile loses it (its process runs on, as docker's exec -d).
    pub fn forward(&self, m: &Message) -> bool {
        let id = match m {
            Message::Started { id }
            | Message::Stdout { id, .. }
            | Message::Stderr { id, .. }
            | Message::Error { id, .. } => *id,
            Message::Exit { id, .. } => {
                let conn = self.lock().remove(id);
                if let Some(mut c) = conn {
                    let _ = c.write_all(&m.encode());
                }
                return *id != MAIN_ID;
            }
            _ => return false,
        };
        if id == MAIN_ID {
            return false;
        }
        if let Some(c) = self.lock().get_mut(&id) {
            let _ = c.write_all(&m.encode());
        }
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, UnixStream>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Accepts control connections for as long as the monitor runs.
pub fn serve(listener: &UnixListener, sender: &AgentSender, routes: &Routes) {
    let next = Arc::new(AtomicU32::new(MAIN_ID + 1));
    for conn in listener.incoming().flatten() {
        let mut reader = BufReader::new(conn);
        let mut line = String::new();
        if reader.by_ref().take(256).read_line(&mut line).is_err() {
            continue;
        }
        match Request::decode(&line) {
            Some(Request::Signal(signal)) => sender.send(&Message::Signal {
                id: MAIN_ID,
                signal,
            }),
            Some(Request::Exec) => {
                let (sender, routes, next) = (sender.clone(), routes.clone(), Arc::clone(&next));
                let _ = std::thread::Builder::new()
                    .name("hull-vm-exec".into())
                    .spawn(move || exec_session(reader, &sender, &routes, &next));
            }
            None => {}
        }
    }
}

/// One exec session: the client's frames to the agent under the process's own id.
fn exec_session(
    mut reader: BufReader<UnixStream>,
    sender: &AgentSender,
    routes: &Routes,
    next: &AtomicU32,
) {
    let id = next.fetch_add(1, Ordering::Relaxed);
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        while let Ok(Some(m)) = decoder.next() {
            let m = match m {
                Message::Exec { spec, .. } => {
                    // The route first: the agent's answer may come at once.
                    if let Ok(c) = reader.get_ref().try_clone() {
                        routes.lock().insert(id, c);
                    }
                    Message::Exec { id, spec }
                }
                Message::Stdin { data, .. } => Message::Stdin { id, data },
                Message::StdinClose { .. } => Message::StdinClose { id },
                Message::Signal { signal, .. } => Message::Signal { id, signal },
                Message::Resize { rows, cols, .. } => Message::Resize { id, rows, cols },
                _ => continue,
            };
            sender.send(&m);
        }
        match reader.read(&mut buf) {
            Ok(n @ 1..) => decoder.push(&buf[..n]),
            _ => return,
        }
    }
}
