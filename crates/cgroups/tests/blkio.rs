//! Block I/O throttling measured on a loop device that the test creates and removes.
#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a panic is the failure report

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use common::{res, skip_unless_root, CgGuard, Sh};
use serde_json::json;

/// A loop device over a sparse file named hull-cgtest-...; detached and deleted on drop.
struct Loop {
    dev: String,
    file: PathBuf,
}

impl Loop {
    fn new(test: &str, mib: u64) -> Option<Loop> {
        let file = std::env::temp_dir().join(format!(
            "{}{}-{test}.img",
            common::PREFIX,
            std::process::id()
        ));
        let f = std::fs::File::create(&file).expect("create backing file");
        f.set_len(mib << 20).expect("size backing file");
        drop(f);
        match attach(&file) {
            Ok(dev) => Some(Loop { dev, file }),
            Err(why) => {
                let _ = std::fs::remove_file(&file);
                hull_testkit::skip(format!("cannot set up a loop device: {why}"));
                None
            }
        }
    }
}

/// util-linux `losetup --find --show`, or busybox's `losetup -f` + `losetup DEV FILE` (qemu guest).
fn attach(file: &std::path::Path) -> Result<String, String> {
    let run = |args: &[&std::ffi::OsStr]| -> Result<String, String> {
        let o = Command::new("losetup")
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if o.status.success() {
            Ok(String::from_utf8_lossy(&o.stdout).trim().to_string())
        } else {
            Err(String::from_utf8_lossy(&o.stderr).trim().to_string())
        }
    };
    run(&["--find".as_ref(), "--show".as_ref(), file.as_os_str()]).or_else(|_| {
        let dev = run(&["-f".as_ref()])?;
        run(&[dev.as_ref(), file.as_os_str()])?;
        Ok(dev)
    })
}

impl Drop for Loop {
    fn drop(&mut self) {
        let _ = Command::new("losetup").args(["-d", &self.dev]).status();
        let _ = std::fs::remove_file(&self.file);
    }
}

#[test]
fn write_bps_throttle_on_loop_device_direct_io() {
    if skip_unless_root() || !common::busybox_present() {
        return;
    }
    let Some(lo) = Loop::new("bps", 16) else {
        return;
    };
    let rdev = std::fs::metadata(&lo.dev).unwrap().rdev();
    let (major, minor) = (libc::major(rdev), libc::minor(rdev));
    let rate: u64 = 2 << 20;
    let r = res(
        json!({"blockIO": {"throttleWriteBpsDevice": [{"major": major, "minor": minor, "rate": rate}]}}),
    );
    let cg = CgGuard::create("blkio-bps", Some(&r));
    let total: u64 = 6 << 20;
    let mut sh = Sh::spawn(&format!(
        "exec /bin/busybox dd if=/dev/zero of={} bs=64k count={} oflag=direct 2>/dev/null",
        lo.dev,
        total >> 16
    ));
    cg.0.add_process(sh.pid()).unwrap();
    let t0 = Instant::now();
    sh.go();
    assert!(sh.wait().success(), "dd failed");
    let secs = t0.elapsed().as_secs_f64();
    let measured = total as f64 / secs;
    let limit = rate as f64;
    eprintln!("write bps limit {limit} B/s: measured {measured:.0} B/s over {secs:.2} s");
    assert!(
        (measured - limit).abs() <= 0.2 * limit,
        "measured {measured:.0} B/s vs limit {limit} B/s"
    );
    let st = cg.0.stats().unwrap();
    let written: u64 = st
        .blkio
        .io_service_bytes_recursive
        .iter()
        .filter(|e| e.major == u64::from(major) && e.minor == u64::from(minor) && e.op == "Write")
        .map(|e| e.value)
        .sum();
    assert_eq!(written, total, "{:?}", st.blkio);
    cg.finish();
}
