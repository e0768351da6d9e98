//! `hull exec` into a VM-isolated container: the container's process settings with the
//! caller's overrides, sent as an `Exec` over an exec session of the VM's control socket
//! (`crate::vm::control`), whose frames bring the process's stdout and stderr apart and its
//! exit back; this process's stdin goes to it with `-i`. Users are resolved in the image's
//! /etc/passwd and /etc/group (the guest's root is the image's layers).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;

use hull_vmm::proto::{Decoder, Message, MAX_CHUNK};

use super::control::{Request, SOCKET};
use crate::bundle::user;
use crate::error::EngineError;
use crate::exec::ExecRequest;
use crate::store::Record;

/// The session's id for its process: the monitor gives it the real one.
const SESSION_ID: u32 = 1;

/// Runs `req` in the VM to its exit (its status), or with `detach` until it started (0).
pub(crate) fn run(root: &Path, record: &Record, req: &ExecRequest) -> Result<i32, EngineError> {
    if req.tty {
        return Err(EngineError::Invalid(
            "exec -t into a container run with --isolation vm is not supported yet".into(),
        ));
    }
    let config = super::spec::config(root, &record.id)?;
    let mut spec = super::spec::process_spec(root, &config)?;
    spec.args.clone_from(&req.command);
    for entry in &req.env {
        let key = entry.split('=').next().unwrap_or_default();
        spec.env.retain(|e| e.split('=').next() != Some(key));
        spec.env.push(entry.clone());
    }
    if let Some(w) = &req.workdir {
        spec.cwd.clone_from(w);
    }
    if let Some(u) = &req.user {
        let lowers = hull_image::ImageStore::open(root)?
            .rootfs_for(&record.settings.manifest)?
            .lowers;
        let read = |f: &str| crate::create::read_image_file(&lowers, f);
        let resolved = user::resolve(u, &read("etc/passwd"), &read("etc/group"))?;
        spec.uid = resolved.uid;
        spec.gid = resolved.gid;
        spec.additional_gids = resolved.additional_gids;
    }
    let mut conn = super::connect_in(&super::dir(root, &record.id), SOCKET)?;
    let mut first = Request::Exec.encode().into_bytes();
    first.extend(
        Message::Exec {
            id: SESSION_ID,
            spec,
        }
        .encode(),
    );
    if !req.interactive || req.detach {
        first.extend(Message::StdinClose { id: SESSION_ID }.encode());
    }
    conn.write_all(&first)
        .map_err(EngineError::io("writing to the VM's control socket"))?;
    if req.interactive && !req.detach {
        forward_stdin(&conn)?;
    }
    relay(conn, req.detach)
}

/// This process's stdin to the session, then its end.
pub fn forward_stdin(conn: &UnixStream) -> Result<(), EngineError> {
    let mut conn = conn
        .try_clone()
        .map_err(EngineError::io("the exec session"))?;
    std::thread::Builder::new()
        .name("hull-exec-stdin".into())
        .spawn(move || {
            let mut buf = vec![0u8; MAX_CHUNK];
            let mut stdin = std::io::stdin().lock();
            while let Ok(n @ 1..) = stdin.read(&mut buf) {
                let m = Message::Stdin {
                    id: SESSION_ID,
                    data: buf[..n].to_vec(),
                };
                if conn.write_all(&m.encode()).is_err() {
                    return;
                }
            }
            let _ = conn.write_all(&Message::StdinClose { id: SESSION_ID }.encode());
        })
        .map(drop)
        .map_err(EngineError::io("starting the stdin thread"))
}

/// The session's frames: output here, until the exit (or, detached, the start).
fn relay(mut conn: UnixStream, detach: bool) -> Result<i32, EngineError> {
    let (mut stdout, mut stderr) = (std::io::stdout(), std::io::stderr());
    let mut decoder = Decoder::default();
    let mut error: Option<String> = None;
    let mut buf = vec![0u8; MAX_CHUNK];
    loop {
        while let Some(m) = decoder
            .next()
            .map_err(|e| EngineError::Invalid(format!("the exec session: {e}")))?
        {
            match m {
                Message::Started { .. } if detach => return Ok(0),
                Message::Stdout { data, .. } => {
                    let _ = stdout.write_all(&data).and_then(|()| stdout.flush());
                }
                Message::Stderr { data, .. } => {
                    let _ = stderr.write_all(&data).and_then(|()| stderr.flush());
                }
                Message::Error { message, .. } => error = Some(message),
                // A process that could not start: docker's 126 or 127, with the reason.
                Message::Exit { status, .. } => {
                    return match error {
                        Some(message) => Err(EngineError::Exec {
                            code: status.code(),
                            message,
                        }),
                        None => Ok(status.code()),
                    }
                }
                _ => {}
            }
        }
        match conn.read(&mut buf) {
            Ok(n @ 1..) => decoder.push(&buf[..n]),
            _ => {
                return Err(EngineError::Invalid(
                    "the VM ended before the exec'd process reported its exit".into(),
                ))
            }
        }
    }
}
