//! The busybox-static root file system that tests run containers on.

use std::io;
use std::path::Path;
use std::process::Command;

/// busybox-static's binary, the whole of the test root file system.
pub const BUSYBOX: &str = "/bin/busybox";

/// A busybox root file system at `rootfs`: /bin/busybox plus its applets as symlinks, a few
/// dirs, and an /etc/passwd and /etc/group with root and nobody.
pub fn busybox(rootfs: &Path) -> io::Result<()> {
    for d in ["bin", "dev", "proc", "sys", "etc", "tmp", "root"] {
        std::fs::create_dir_all(rootfs.join(d))?;
    }
    std::fs::copy(BUSYBOX, rootfs.join("bin/busybox"))?;
    let out = Command::new(BUSYBOX).arg("--list").output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "{BUSYBOX} --list: {}",
            out.status
        )));
    }
    for applet in String::from_utf8_lossy(&out.stdout).split_whitespace() {
        if applet != "busybox" {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet))?;
        }
    }
    std::fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n",
    )?;
    std::fs::write(rootfs.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")
}
