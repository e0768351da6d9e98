//! The VMM's API socket (`hull vm run --name`), where `hull vm exec` asks the VMM
//! for another process in the guest. It speaks hull-vmproto, one process per connection: the
//! client sends `Exec` (its id is ignored), then its stdin, signals and window sizes; the VMM
//! gives the process a guest id of its own, passes the client's frames on under that id, and
//! routes the guest's frames for it (`Started`, output, `Error`, `Exit`) back to the client.
//! A client that goes away leaves its process running with its stdin closed (as `docker exec`
//! does), its output dropped.
//!
//! The socket lives in a directory of its own under the state root (`vm/api/<name>/`, made by
//! `hull vm run`), which the jail shares with the VMM: the VMM binds it before its seccomp
//! filter is on (accept4 stays allowed after).

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context;
use hull_vmm::proto::{Decoder, Message, MAIN_ID};

use hull_vmm::stdio::ToGuest;

/// The guest processes of API clients: guest id -> the client's connection.
#[derive(Debug, Clone, Default)]
pub struct Routes(Arc<Mutex<HashMap<u32, UnixStream>>>);

impl Routes {
    /// Sends `m` to the client whose process it is about; gives it back when it is not a
    /// client's (the main process's, or one without a route).
    pub fn deliver(&self, m: Message) -> Option<Message> {
        let id = match &m {
            Message::Started { id }
            | Message::Stdout { id, .. }
            | Message::Stderr { id, .. }
            | Message::Exit { id, .. }
            | Message::Error { id, .. } => *id,
            _ => return Some(m),
        };
        if id == MAIN_ID {
            return Some(m);
        }
        let mut routes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(client) = routes.get_mut(&id) else {
            // A client that left: its process's output goes nowhere.
            return None;
        };
        let gone = client.write_all(&m.encode()).is_err();
        if gone || matches!(m, Message::Exit { .. }) {
            if let Some(c) = routes.remove(&id) {
                let _ = c.shutdown(std::net::Shutdown::Both);
            }
        }
        None
    }

    fn add(&self, id: u32, client: UnixStream) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id, client);
    }

    fn remove(&self, id: u32) -> bool {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&id)
            .is_some()
    }
}

/// Serves `listener` on a thread of its own, one thread per client.
pub fn serve(listener: UnixListener, to: ToGuest, routes: Routes) -> anyhow::Result<()> {
    // Ids of exec'd processes, above the main one's; never reused within a VM's life.
    let next = Arc::new(AtomicU32::new(MAIN_ID + 1));
    std::thread::Builder::new()
        .name("hull-vm-api".into())
        .spawn(move || {
            for client in listener.incoming().flatten() {
                let id = next.fetch_add(1, Ordering::SeqCst);
                let (to, routes) = (to.clone(), routes.clone());
                // Without a thread the client gets no answer and sees its connection end.
                let _ = std::thread::Builder::new()
                    .name("hull-vm-client".into())
                    .spawn(move || client_loop(client, id, &to, &routes));
            }
        })
        .context("cannot start the API thread")?;
    Ok(())
}

/// The client's frames under guest id `id`, until it closes its end.
fn client_loop(mut client: UnixStream, id: u32, to: &ToGuest, routes: &Routes) {
    let mut decoder = Decoder::default();
    let mut buf = vec![0u8; 64 * 1024];
    let mut started = false;
    loop {
        loop {
            let m = match decoder.next() {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    let err = Message::Error {
                        id,
                        message: format!("bad frame from the client: {e}"),
                    };
                    let _ = client.write_all(&err.encode());
                    return end(id, started, to, routes);
                }
            };
            let m = match m {
                Message::Exec { spec, .. } if !started => {
                    let Ok(conn) = client.try_clone() else {
                        return;
                    };
                    routes.add(id, conn);
                    started = true;
                    Message::Exec { id, spec }
                }
                Message::Stdin { data, .. } if started => Message::Stdin { id, data },
                Message::StdinClose { .. } if started => Message::StdinClose { id },
                Message::Signal { signal, .. } if started => Message::Signal { id, signal },
                Message::Resize { rows, cols, .. } if started => Message::Resize { id, rows, cols },
                other => {
                    let err = Message::Error {
                        id,
                        message: format!("unexpected frame from the client: {other:?}"),
                    };
                    let _ = client.write_all(&err.encode());
                    return end(id, started, to, routes);
                }
            };
            to(&m);
        }
        match client.read(&mut buf) {
            Ok(n @ 1..) => decoder.push(&buf[..n]),
            _ => return end(id, started, to, routes),
        }
    }
}

/// The client left: its process, if still running, loses its stdin and its route.
fn end(id: u32, started: bool, to: &ToGuest, routes: &Routes) {
    if started && routes.remove(id) {
        to(&Message::StdinClose { id });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_vmm::proto::ExitStatus;

    #[test]
    fn frames_of_client_processes_go_to_their_client_and_the_rest_come_back() {
        let routes = Routes::default();
        let (mine, mut theirs) = UnixStream::pair().unwrap();
        routes.add(3, mine);
        let main_out = Message::Stdout {
            id: MAIN_ID,
            data: b"main".to_vec(),
        };
        assert_eq!(routes.deliver(main_out.clone()), Some(main_out));
        assert_eq!(routes.deliver(Message::Ready), Some(Message::Ready));
        let out = Message::Stdout {
            id: 3,
            data: b"x".to_vec(),
        };
        assert_eq!(routes.deliver(out.clone()), None);
        let exit = Message::Exit {
            id: 3,
            status: ExitStatus::Code(4),
        };
        assert_eq!(routes.deliver(exit.clone()), None);
        // After its exit the route is gone: later frames for it are dropped.
        assert_eq!(routes.deliver(out.clone()), None);
        let mut got = Vec::new();
        theirs.read_to_end(&mut got).unwrap();
        let mut d = Decoder::default();
        d.push(&got);
        assert_eq!(d.next().unwrap(), Some(out));
        assert_eq!(d.next().unwrap(), Some(exit));
        assert_eq!(d.next().unwrap(), None);
    }

    #[test]
    fn a_client_gets_its_own_id_and_a_bad_first_frame_is_refused() {
        let sent: Arc<Mutex<Vec<Message>>> = Arc::default();
        let log = Arc::clone(&sent);
        let to: ToGuest = Arc::new(move |m| log.lock().unwrap().push(m.clone()));
        let routes = Routes::default();
        let (server, mut client) = UnixStream::pair().unwrap();
        let spec = hull_vmm::proto::ProcessSpec::default();
        for m in [
            Message::Exec {
                id: 0,
                spec: spec.clone(),
            },
            Message::Stdin {
                id: 0,
                data: b"in".to_vec(),
            },
            Message::Signal { id: 9, signal: 15 },
        ] {
            client.write_all(&m.encode()).unwrap();
        }
        client.shutdown(std::net::Shutdown::Write).unwrap();
        client_loop(server, 7, &to, &routes);
        assert_eq!(
            *sent.lock().unwrap(),
            vec![
                Message::Exec { id: 7, spec },
                Message::Stdin {
                    id: 7,
                    data: b"in".to_vec()
                },
                Message::Signal { id: 7, signal: 15 },
                Message::StdinClose { id: 7 },
            ]
        );
        sent.lock().unwrap().clear();
        let (server, mut client) = UnixStream::pair().unwrap();
        client
            .write_all(&Message::StdinClose { id: 0 }.encode())
            .unwrap();
        client_loop(server, 8, &to, &routes);
        assert!(sent.lock().unwrap().is_empty(), "nothing reaches the guest");
        let mut got = Vec::new();
        client.read_to_end(&mut got).unwrap();
        let mut d = Decoder::default();
        d.push(&got);
        assert!(matches!(
            d.next().unwrap(),
            Some(Message::Error { id: 8, .. })
        ));
    }
}
