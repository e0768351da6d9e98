//! A purpose-built long-mode guest, run through the whole VMM (ELF loading, long-mode vCPU setup,
//! CPUID, MSRs, irqchip, vCPU threads, COM1, i8042 reset). It runs on any KVM, including this
//! host's kvm-pvm, which does not boot a stock kernel.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::sync::{Arc, Mutex};

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

const LOAD: u64 = 0x100_0000;

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

/// The smallest ELF64 executable with one PT_LOAD segment at `LOAD`.
fn elf(code: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    let (ehsize, phsize) = (64u16, 56u16);
    let off = u64::from(ehsize + phsize);
    f.extend_from_slice(b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0");
    f.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    f.extend_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    f.extend_from_slice(&1u32.to_le_bytes());
    f.extend_from_slice(&LOAD.to_le_bytes()); // e_entry
    f.extend_from_slice(&64u64.to_le_bytes()); // e_phoff
    f.extend_from_slice(&0u64.to_le_bytes()); // e_shoff
    f.extend_from_slice(&0u32.to_le_bytes());
    f.extend_from_slice(&ehsize.to_le_bytes());
    f.extend_from_slice(&phsize.to_le_bytes());
    f.extend_from_slice(&1u16.to_le_bytes()); // e_phnum
    f.extend_from_slice(&[0; 6]); // shentsize, shnum, shstrndx
    f.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    f.extend_from_slice(&5u32.to_le_bytes()); // R+X
    f.extend_from_slice(&off.to_le_bytes()); // p_offset
    f.extend_from_slice(&LOAD.to_le_bytes()); // p_vaddr
    f.extend_from_slice(&LOAD.to_le_bytes()); // p_paddr
    let len = code.len() as u64;
    f.extend_from_slice(&len.to_le_bytes());
    f.extend_from_slice(&len.to_le_bytes());
    f.extend_from_slice(&0x1000u64.to_le_bytes());
    f.extend_from_slice(code);
    f
}

#[test]
fn long_mode_guest_prints_and_resets() {
    if host_kvm() == HostKvm::Missing {
        hull_testkit::skip("no /dev/kvm");
        return;
    }
    let dir = std::env::temp_dir().join(format!("hull-vmm-tiny-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kernel = dir.join("guest.elf");
    std::fs::write(&kernel, elf(&guest_code())).unwrap();
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
        },
        disks: vec![],
        agent: false,
    };
    let consoles = Consoles {
        serial: Box::new(sink.clone()),
        virtio: Some(Box::new(std::io::sink())),
    };
    let result = Vm::new(&cfg, consoles).and_then(|mut vm| {
        let report = vm.run()?;
        assert!(matches!(vm.run(), Err(hull_vmm::VmError::AlreadyRan)));
        Ok(report)
    });
    std::fs::remove_dir_all(&dir).unwrap();
    let report = result.expect("the guest runs");

    let c: std::collections::HashMap<_, _> = report.counters.snapshot().into_iter().collect();
    let out = String::from_utf8_lossy(&sink.0.lock().unwrap()).into_owned();
    assert_eq!(out, "hull\n\0", "{c:?}");
    assert_eq!(report.reason, StopReason::Reset);
    assert_eq!(report.console_error, None);
    assert_eq!(c["io_out"], 7, "{c:?}");
    assert_eq!((c["mmio_read"], c["mmio_write"]), (1, 1), "{c:?}");
    assert_eq!(c["io_in"], 6, "{c:?}");
    assert_eq!(c["unhandled"], 3, "{c:?}");
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
    std::fs::write(&kernel, elf(&guest_code())).unwrap();
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
