//! A terminal process: its pty master arrives over --console-socket (SCM_RIGHTS), and the
//! process sees a tty on its stdio with the configured size.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixListener;

use common::{can_run, TestContainer};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags};
use serde_json::json;

#[test]
fn console_socket_receives_the_pty_master() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("console");
    c.config["process"]["terminal"] = json!(true);
    c.config["process"]["consoleSize"] = json!({"height": 33, "width": 111});
    c.script("tty; stty size; test -c /dev/console && echo console-is-a-tty; echo tty-done");
    let socket_path = c.dir.join("console.sock");
    let listener = UnixListener::bind(&socket_path).unwrap();
    let receiver = std::thread::spawn(move || -> OwnedFd {
        let (stream, _) = listener.accept().unwrap();
        let mut buf = [0u8; 256];
        let mut iov = [IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([RawFd; 1]);
        let msg = recvmsg::<()>(
            stream.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::empty(),
        )
        .unwrap();
        for cmsg in msg.cmsgs().unwrap() {
            if let ControlMessageOwned::ScmRights(fds) = cmsg {
                // SAFETY: the fd was just received and is owned by nobody else.
                return unsafe { OwnedFd::from_raw_fd(fds[0]) };
            }
        }
        panic!("no fd received");
    });
    c.write_config();
    let out = c.runtime(&[
        "create",
        "--bundle",
        c.bundle.to_str().unwrap(),
        "--console-socket",
        socket_path.to_str().unwrap(),
        &c.id,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let master = receiver.join().unwrap();
    c.ok(&["start", &c.id]);
    let mut file = std::fs::File::from(master);
    let mut text = String::new();
    let mut buf = [0u8; 4096];
    while !text.contains("tty-done") {
        match file.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => text.push_str(&String::from_utf8_lossy(&buf[..n])),
        }
    }
    assert!(text.contains("/dev/pts/0"), "{text:?}");
    assert!(text.contains("33 111"), "{text:?}");
    assert!(text.contains("console-is-a-tty"), "{text:?}");
}

#[test]
fn terminal_without_console_socket_is_refused_for_create() {
    if !can_run() {
        return;
    }
    let mut c = TestContainer::new("noconsole");
    c.config["process"]["terminal"] = json!(true);
    c.write_config();
    let out = c.runtime(&["create", "--bundle", c.bundle.to_str().unwrap(), &c.id]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("console socket"));
    assert!(!c.root.join(&c.id).exists());
}
