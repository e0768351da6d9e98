//! A purpose-built long-mode guest, run through the whole VMM (ELF loading, long-mode vCPU setup,
//! CPUID, MSRs, irqchip, vCPU threads, COM1, i8042 reset), and a 32-bit one through the PVH entry. It runs on any KVM, including this
//! host's kvm-pvm, which does not boot a stock kernel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use hull_testkit::tiny_guest::elf as tiny_elf;
use hull_vmm::boot::BootProtocol;
use hull_vmm::{host_kvm, BootSource, Consoles, HostKvm, StopReason, Vm, VmConfig};

#[derive(Clone, Default)]
struct Sink(Arc<Mutex<Vec<u8>>>);
impl Write for Sink {
    fn write(&mut self, d: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(d);
        Ok(d.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// 64-bit code: writes "hull\n" to COM1 (reading the line status before each byte, as a driver
/// does), checks the stack works, reads and writes MMIO where no device is, then resets through
/// the i8042.
fn guest_code() -> Vec<u8> {
    let mut c = Vec::new();
    for b in b"hull\n" {
        c.extend_from_slice(&[0x66, 0xba, 0xfd, 0x03]); // mov dx, 0x3fd (LSR)
        c.push(0xec); // in al, dx
        c.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
        c.extend_from_slice(&[0xb0, *b]); // mov al, b
        c.push(0x50); // push rax
        c.push(0x5b); // pop rbx
        c.extend_from_slice(&[0x88, 0xd8]); // mov al, bl
        c.push(0xee); // out dx, al
    }
    // MMIO where no device is (the boot page tables map the first GiB only; the virtio window
    // at 0xd000_0000 is for the guest kernel's own tables): reads 0, so COM1 gets a NUL.
    c.extend_from_slice(&[0x48, 0xbb, 0, 0, 0, 0x30, 0, 0, 0, 0]); // mov rbx, 0x3000_0000
    c.extend_from_slice(&[0x8b, 0x03]); // mov eax, [rbx]
    c.push(0xee); // out dx, al
    c.extend_from_slice(&[0xc7, 0x43, 0x70, 1, 0, 0, 0]); // mov dword [rbx + 0x70], 1
    c.extend_from_slice(&[0xe4, 0x71]); // in al, 0x71 (no device: reads 0)
    c.extend_from_slice(&[0xb0, 0xfe, 0xe6, 0x64]); // mov al, 0xfe; out 0x64, al
    c.extend_from_slice(&[0xf4, 0xeb, 0xfd]); // hlt; jmp hlt
    c
}

/// 32-bit protected-mode code for the PVH entry: checks %ebx points at `hvm_start_info` (its
/// magic), then prints "P", the first byte of the command line (through `cmdline_paddr`) and the
/// first byte of module 0, the initrd (through `modlist_paddr`), and resets through the i8042.
fn pvh_guest_code() -> Vec<u8> {
    let mut c = Vec::new();
    c.extend_from_slice(&[0x66, 0xba, 0xf8, 0x03]); // mov dx, 0x3f8
    c.extend_from_slice(&[0x81, 0x3b, 0x78, 0xc5, 0x6e, 0x33]); // cmp dword [ebx], 0x336ec578
    c.extend_from_slice(&[0x75, 0x03]); // jne +3
    c.extend_from_slice(&[0xb0, b'P', 0xee]); // mov al, 'P'; out dx, al
    c.extend_from_slice(&[0x8b, 0x73, 0x18]); // mov esi, [ebx + 24] (cmdline_paddr)
    c.extend_from_slice(&[0x8a, 0x06, 0xee]); // mov al, [esi]; out dx, al
    c.extend_from_slice(&[0x8b, 0x73, 0x10]); // mov esi, [ebx + 16] (modlist_paddr)
    c.extend_from_slice(&[0x8b, 0x36]); // mov esi, [esi] (module 0's paddr)
    c.extend_from_slice(&[0x8a, 0x06, 0xee]); // mov al, [esi]; out dx, al
    c.extend_from_slice(&[0xb0, 0xfe, 0xe6, 0x64]); // mov al, 0xfe; out 0x64, al
    c.extend_from_slice(&[0xf4, 0xeb, 0xfd]); // hlt; jmp hlt
    c
}

/// Re-runs this test binary's test `name` in a child with `mode` in its environment; the child's
/// exit status.
fn in_child(name: &str, mode: &str) -> std::process::ExitStatus {
    std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD_MODE, mode)
        .status()
        .unwrap()
}

fn tiny_dir(name: &str, owner: u32) -> std::path::PathBuf {
    std::env::temp_dir().join(format!("hull-vmm-tiny-{name}-{owner}"))
}

const CHILD_MODE: &str = "HULL_VMM_TEST_CHILD";

/// Ends a child without running the test harness's exit path (which the filter need not allow).
fn child_exit(code: i32) -> ! {
    // SAFETY: _exit ends the process at once; nothing is left to run or drop.
    unsafe { libc::_exit(code) }
}

/// Boots `image` with a 5000-byte initrd of 0x5a and the command line "console=ttyS0"; what
/// COM1 got and the report.
fn boot(name: &str, image: Vec<u8>, protocol: BootProtocol) -> (String, hull_vmm::RunReport) {
    boot_with(name, image, protocol, false)
}

/// `boot`, with the VMM's seccomp filter installed between building the VM and running it.
fn boot_with(
    name: &str,
    image: Vec<u8>,
    protocol: BootProtocol,
    seccomp: bool,
) -> (String, hull_vmm::RunReport) {
    // A child under the filter cannot remove the directory; its parent (whose pid names it) does.
    let owner = if seccomp {
        std::os::unix::process::parent_id()
    } else {
        std::process::id()
    };
    let dir = tiny_dir(name, owner);
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = dir.join("guest.elf");
    std::fs::write(&kernel, image).unwrap();
    let initrd = dir.join("initrd");
    std::fs::write(&initrd, vec![0x5a; 5000]).unwrap();

    let sink = Sink::default();
    let cfg = VmConfig {
        mem_size: 64 << 20,
        vcpus: 2,
        boot: BootSource {
            kernel,
            initrd: Some(initrd),
            cmdline: "console=ttyS0".into(),
            protocol,
        },
        disks: vec![],
        agent: false,
    };
    let consoles = Consoles {
        serial: Box::new(sink.clone()),
        virtio: Some(Box::new(std::io::sink())),
    };
    let result = Vm::new(&cfg, consoles).and_then(|mut vm| {
        if seccomp {
            hull_vmm::seccomp::install().unwrap();
        }
        let report = vm.run()?;
        assert!(matches!(vm.run(), Err(hull_vmm::VmError::AlreadyRan)));
        Ok(report)
    });
    if !seccomp {
        std::fs::remove_dir_all(&dir).unwrap();
    }
    let report = result.expect("the guest runs");
    let out = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    (out, report)
}

#[test]
fn long_mode_guest_prints_and_resets() {
    if host_kvm() == HostKvm::Missing {
        hull_testkit::skip("no /dev/kvm");
        return;
    }
    let (out, report) = boot("long", tiny_elf(&guest_code(), false), BootProtocol::Auto);
    let c: std::collections::HashMap<_, _> = report.counters.snapshot().into_iter().collect();
    assert_eq!(out, "hull\n\0", "{c:?}");
    assert_eq!(report.reason, StopReason::Reset);
    assert_eq!(report.console_error, None);
    assert_eq!(c["io_out"], 7, "{c:?}");
    assert_eq!((c["mmio_read"], c["mmio_write"]), (1, 1), "{c:?}");
    assert_eq!(c["io_in"], 6, "{c:?}");
    assert_eq!(c["unhandled"], 3, "{c:?}");
}

/// A kernel with the PVH note enters at it in 32-bit protected mode with %ebx at a start info
/// whose command line and initrd module the guest reads back.
#[test]
fn pvh_guest_reads_its_start_info() {
    if host_kvm() == HostKvm::Missing {
        hull_testkit::skip("no /dev/kvm");
        return;
    }
    let (out, report) = boot("pvh", tiny_elf(&pvh_guest_code(), true), BootProtocol::Auto);
    assert_eq!(out, "PcZ");
    assert_eq!(report.reason, StopReason::Reset);
}

/// The same kernel with the 64-bit protocol forced enters in long mode at the ELF entry: the
/// 32-bit code then runs as 64-bit code, so the run must not print the PVH guest's answer.
#[test]
fn pvh_note_is_ignored_when_linux64_is_asked() {
    if host_kvm() == HostKvm::Missing {
        hull_testkit::skip("no /dev/kvm");
        return;
    }
    let (out, report) = boot(
        "long-pvh",
        tiny_elf(&guest_code(), true),
        BootProtocol::Linux64,
    );
    assert_eq!(out, "hull\n\0");
    assert_eq!(report.reason, StopReason::Reset);
}

/// The whole run (vCPU threads, exits, the console, the kick and join at the end) works under
/// the filter; in a child, since the filter stays with the process.
#[test]
fn guest_runs_under_the_seccomp_filter() {
    if std::env::var(CHILD_MODE).as_deref() == Ok("vm") {
        let (out, report) = boot_with(
            "seccomp",
            tiny_elf(&guest_code(), false),
            BootProtocol::Auto,
            true,
        );
        child_exit(i32::from(
            !(out == "hull\n\0" && report.reason == StopReason::Reset),
        ));
    }
    if host_kvm() == HostKvm::Missing {
        hull_testkit::skip("no /dev/kvm");
        return;
    }
    let status = in_child("guest_runs_under_the_seccomp_filter", "vm");
    std::fs::remove_dir_all(tiny_dir("seccomp", std::process::id())).unwrap();
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// What the filter leaves out kills the process (SIGSYS): here socket(2) and open(2).
#[test]
fn seccomp_filter_kills_on_other_syscalls() {
    use std::os::unix::process::ExitStatusExt;
    match std::env::var(CHILD_MODE).as_deref() {
        Ok("socket") => {
            hull_vmm::seccomp::install().unwrap();
            // SAFETY: a plain system call; the filter ends the process at it.
            unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM, 0) };
            child_exit(0);
        }
        Ok("open") => {
            hull_vmm::seccomp::install().unwrap();
            let _ = std::fs::File::open("/etc/hostname");
            child_exit(0);
        }
        Ok("write") => {
            hull_vmm::seccomp::install().unwrap();
            std::io::Write::write_all(&mut std::io::stderr(), b"allowed\n").unwrap();
            child_exit(7);
        }
        _ => {}
    }
    let name = "seccomp_filter_kills_on_other_syscalls";
    for mode in ["socket", "open"] {
        let status = in_child(name, mode);
        assert_eq!(status.signal(), Some(libc::SIGSYS), "{mode}: {status:?}");
    }
    assert_eq!(in_child(name, "write").code(), Some(7));
}

#[test]
fn bad_vcpu_count_is_refused() {
    let cfg = VmConfig {
        mem_size: 64 << 20,
        vcpus: 0,
        boot: BootSource {
            kernel: "/nonexistent".into(),
            initrd: None,
            cmdline: String::new(),
            protocol: BootProtocol::Auto,
        },
        disks: vec![],
        agent: false,
    };
    let consoles = Consoles {
        serial: Box::new(std::io::sink()),
        virtio: None,
    };
    let err = Vm::new(&cfg, consoles).expect_err("0 vCPUs");
    assert_eq!(err.to_string(), "0 vCPUs requested: between 1 and 254");
}

#[test]
fn disks_and_the_agent_channel_are_attached() {
    if host_kvm() == HostKvm::Missing {
        hull_testkit::skip("no /dev/kvm");
        return;
    }
    let dir = std::env::temp_dir().join(format!("hull-vmm-disks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = dir.join("guest.elf");
    std::fs::write(&kernel, tiny_elf(&guest_code(), false)).unwrap();
    let (ro, rw) = (dir.join("ro.img"), dir.join("rw.img"));
    std::fs::write(&ro, vec![0u8; 4096]).unwrap();
    std::fs::write(&rw, vec![0u8; 4096]).unwrap();
    let disk = |path: &std::path::Path, read_only, id: &str| hull_vmm::DiskConfig {
        path: path.to_path_buf(),
        read_only,
        id: id.into(),
    };
    let mut cfg = VmConfig {
        mem_size: 64 << 20,
        vcpus: 1,
        boot: BootSource {
            kernel,
            initrd: None,
            cmdline: "console=ttyS0".into(),
            protocol: BootProtocol::Auto,
        },
        disks: vec![
            disk(&ro, true, "hull-disk0"),
            disk(&rw, false, "hull-disk1"),
        ],
        agent: true,
    };
    let consoles = || Consoles {
        serial: Box::new(std::io::sink()),
        virtio: None,
    };
    let vm = Vm::new(&cfg, consoles()).map(|mut vm| vm.take_agent().is_some());
    cfg.disks
        .push(disk(&dir.join("missing.img"), true, "hull-disk2"));
    let missing = Vm::new(&cfg, consoles()).map(|_| ());
    cfg.disks.pop();
    cfg.disks
        .push(disk(&rw, true, "an-id-longer-than-20-bytes"));
    let long_id = Vm::new(&cfg, consoles()).map(|_| ());
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        vm.expect("a VM with two disks and the agent port"),
        "the agent is there once"
    );
    let err = missing.expect_err("a missing image").to_string();
    assert!(err.contains("missing.img"), "{err}");
    let err = long_id.expect_err("a long id").to_string();
    assert!(err.contains("longer than 20 bytes"), "{err}");
}
