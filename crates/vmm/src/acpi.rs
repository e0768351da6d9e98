//! ACPI tables, the way a hardware-reduced microVM describes itself (as Firecracker does): the
//! RSDP Linux finds by scanning 0xe0000.., an XSDT, a hardware-reduced FADT, a MADT with one
//! local APIC per vCPU and the IOAPIC, and a DSDT declaring COM1. The kernels hull boots have no
//! MP-table parser, so without the MADT they would see one CPU.

use acpi_tables::fadt::{FADTBuilder, Flags};
use acpi_tables::madt::{
    EnabledStatus, IoApic, LocalInterruptController, ProcessorLocalApic, MADT,
};
use acpi_tables::rsdp::Rsdp;
use acpi_tables::sdt::Sdt;
use acpi_tables::xsdt::XSDT;
use acpi_tables::{aml, Aml};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::devices::virtio::mmio::MMIO_WINDOW;
use crate::layout::{ACPI_END, ACPI_START, APIC_ADDR, IOAPIC_ADDR};

const OEM_ID: [u8; 6] = *b"HULLVM";
const OEM_TABLE_ID: [u8; 8] = *b"HULLVMM ";
const OEM_REVISION: u32 = 1;
/// IA-PC boot architecture flags: no VGA, no MSI, no PCIe ASPM control (there is no PCI at all).
const IAPC_VGA_NOT_PRESENT: u16 = 1 << 2;
const IAPC_MSI_NOT_SUPPORTED: u16 = 1 << 3;
const IAPC_PCIE_ASPM_CONTROLS: u16 = 1 << 4;
/// Serial COM1, as the DSDT declares it.
const COM1_PORT: u16 = 0x3f8;
const COM1_IRQ: u32 = 4;

#[derive(Debug, thiserror::Error)]
pub enum AcpiError {
    #[error("{0} vCPUs do not fit in the MADT (at most 254)")]
    TooManyVcpus(usize),
    #[error("the ACPI tables ({0} bytes) do not fit 0xe0000..0x100000")]
    TooLarge(u64),
    #[error("virtio-mmio window at {0:#x} is above 4 GiB")]
    VirtioAbove4G(u64),
    #[error("cannot write the ACPI tables to guest memory: {0}")]
    Memory(#[from] vm_memory::GuestMemoryError),
}

fn bytes(table: &dyn Aml) -> Vec<u8> {
    let mut v = Vec::new();
    table.to_aml_bytes(&mut v);
    v
}

/// A virtio-mmio device as the DSDT announces it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VirtioMmio {
    pub base: u64,
    pub gsi: u32,
}

/// `LNRO0005`, the ACPI id Linux's virtio_mmio driver binds to: one device per register window.
fn virtio_device(
    index: usize,
    dev: &VirtioMmio,
    sink: &mut dyn acpi_tables::AmlSink,
) -> Result<(), AcpiError> {
    let base = u32::try_from(dev.base).map_err(|_| AcpiError::VirtioAbove4G(dev.base))?;
    let window = u32::try_from(MMIO_WINDOW).unwrap_or(u32::MAX);
    let uid = u32::try_from(index).unwrap_or(u32::MAX);
    let name = format!("_SB_.V{index:03X}");
    let hid: aml::AmlStr = "LNRO0005";
    let mem = aml::Memory32Fixed::new(true, base, window);
    let irq = aml::Interrupt::new(true, true, false, false, dev.gsi);
    let crs = aml::ResourceTemplate::new(vec![&mem, &irq]);
    let hid_name = aml::Name::new("_HID".into(), &hid);
    let uid_name = aml::Name::new("_UID".into(), &uid);
    let cca_name = aml::Name::new("_CCA".into(), &aml::ONE);
    let crs_name = aml::Name::new("_CRS".into(), &crs);
    aml::Device::new(
        name.as_str().into(),
        vec![&hid_name, &uid_name, &cca_name, &crs_name],
    )
    .to_aml_bytes(sink);
    Ok(())
}

fn dsdt(virtio: &[VirtioMmio]) -> Result<Vec<u8>, AcpiError> {
    let mut dsdt = Sdt::new(*b"DSDT", 36, 6, OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    let hid = aml::EISAName::new("PNP0501");
    let io = aml::IO::new(COM1_PORT, COM1_PORT, 1, 8);
    let irq = aml::Interrupt::new(true, true, false, false, COM1_IRQ);
    let crs = aml::ResourceTemplate::new(vec![&io, &irq]);
    let hid_name = aml::Name::new("_HID".into(), &hid);
    let uid_name = aml::Name::new("_UID".into(), &aml::ZERO);
    let crs_name = aml::Name::new("_CRS".into(), &crs);
    let com1 = aml::Device::new("_SB_.COM1".into(), vec![&hid_name, &uid_name, &crs_name]);
    com1.to_aml_bytes(&mut dsdt);
    for (i, dev) in virtio.iter().enumerate() {
        virtio_device(i, dev, &mut dsdt)?;
    }
    Ok(dsdt.as_slice().to_vec())
}

fn fadt(dsdt_addr: u64) -> Vec<u8> {
    let mut b = FADTBuilder::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION)
        .flag(Flags::HwReducedAcpi)
        .flag(Flags::PwrButton)
        .flag(Flags::SlpButton)
        .dsdt_64(dsdt_addr);
    b.iapc_boot_arch =
        (IAPC_VGA_NOT_PRESENT | IAPC_MSI_NOT_SUPPORTED | IAPC_PCIE_ASPM_CONTROLS).into();
    bytes(&b.finalize())
}

fn madt(vcpus: usize) -> Result<Vec<u8>, AcpiError> {
    let n = u8::try_from(vcpus)
        .ok()
        .filter(|n| *n < 0xff)
        .ok_or(AcpiError::TooManyVcpus(vcpus))?;
    let mut madt = MADT::new(
        OEM_ID,
        OEM_TABLE_ID,
        OEM_REVISION,
        LocalInterruptController::Address(APIC_ADDR),
    );
    for id in 0..n {
        madt.add_structure(ProcessorLocalApic::new(id, id, EnabledStatus::Enabled));
    }
    // The IOAPIC's id follows the vCPUs' APIC ids; its pins start at GSI 0.
    madt.add_structure(IoApic::new(n, IOAPIC_ADDR, 0));
    Ok(bytes(&madt))
}

fn align16(x: u64) -> u64 {
    (x + 15) & !15
}

/// Every table and the guest address it goes to; the RSDP first, at `ACPI_START`.
pub fn build_tables(vcpus: usize, virtio: &[VirtioMmio]) -> Result<Vec<(u64, Vec<u8>)>, AcpiError> {
    let mut out = Vec::new();
    let mut next = align16(ACPI_START + Rsdp::len() as u64);
    let mut place = |table: Vec<u8>, out: &mut Vec<(u64, Vec<u8>)>| {
        let addr = next;
        next = align16(addr + table.len() as u64);
        out.push((addr, table));
        addr
    };
    let dsdt_addr = place(dsdt(virtio)?, &mut out);
    let fadt_addr = place(fadt(dsdt_addr), &mut out);
    let madt_addr = place(madt(vcpus)?, &mut out);
    let mut xsdt = XSDT::new(OEM_ID, OEM_TABLE_ID, OEM_REVISION);
    xsdt.add_entry(fadt_addr);
    xsdt.add_entry(madt_addr);
    let xsdt_addr = place(bytes(&xsdt), &mut out);
    if next > ACPI_END {
        return Err(AcpiError::TooLarge(next - ACPI_START));
    }
    out.insert(0, (ACPI_START, bytes(&Rsdp::new(OEM_ID, xsdt_addr))));
    Ok(out)
}

/// Writes the tables for `vcpus` vCPUs and the `virtio` devices into guest memory.
pub fn write_tables(
    mem: &GuestMemoryMmap,
    vcpus: usize,
    virtio: &[VirtioMmio],
) -> Result<(), AcpiError> {
    for (addr, table) in build_tables(vcpus, virtio)? {
        mem.write_slice(&table, GuestAddress(addr))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{le32, le64};

    fn sum(b: &[u8]) -> u8 {
        b.iter().fold(0u8, |a, x| a.wrapping_add(*x))
    }

    fn table<'a>(tables: &'a [(u64, Vec<u8>)], sig: &[u8]) -> &'a (u64, Vec<u8>) {
        tables
            .iter()
            .find(|(_, t)| &t[..sig.len()] == sig)
            .expect("table")
    }

    #[test]
    fn every_table_sums_to_zero_and_states_its_length() {
        let tables = build_tables(2, &[]).expect("tables");
        let (rsdp_addr, rsdp) = &tables[0];
        assert_eq!((*rsdp_addr, &rsdp[..8]), (ACPI_START, &b"RSD PTR "[..]));
        assert_eq!(sum(&rsdp[..20]), 0, "RSDP v1 checksum");
        assert_eq!(sum(rsdp), 0, "RSDP extended checksum");
        for (addr, t) in &tables[1..] {
            assert_eq!(
                sum(t),
                0,
                "checksum of {:?}",
                String::from_utf8_lossy(&t[..4])
            );
            assert_eq!(le32(t, 4) as usize, t.len());
            assert_eq!(addr % 16, 0);
        }
    }

    #[test]
    fn pointers_chain_rsdp_xsdt_fadt_dsdt() {
        let tables = build_tables(1, &[]).expect("tables");
        let xsdt_addr = le64(&tables[0].1, 24);
        let (addr, xsdt) = table(&tables, b"XSDT");
        assert_eq!(*addr, xsdt_addr);
        let entries: Vec<u64> = (36..xsdt.len()).step_by(8).map(|o| le64(xsdt, o)).collect();
        let (fadt_addr, fadt) = table(&tables, b"FACP");
        let (madt_addr, _) = table(&tables, b"APIC");
        assert_eq!(entries, vec![*fadt_addr, *madt_addr]);
        let (dsdt_addr, dsdt) = table(&tables, b"DSDT");
        assert_eq!(le64(fadt, 140), *dsdt_addr); // X_DSDT
        assert_ne!(le32(fadt, 112) & (1 << 20), 0, "HW_REDUCED_ACPI");
        assert!(dsdt.windows(4).any(|w| w == b"COM1"));
    }

    #[test]
    fn dsdt_announces_virtio_mmio_devices() {
        let devs = [
            VirtioMmio {
                base: 0xd000_0000,
                gsi: 5,
            },
            VirtioMmio {
                base: 0xd000_1000,
                gsi: 6,
            },
        ];
        let tables = build_tables(1, &devs).expect("tables");
        let (_, dsdt) = table(&tables, b"DSDT");
        assert_eq!(sum(dsdt), 0);
        let hids = dsdt.windows(8).filter(|w| w == b"LNRO0005").count();
        assert_eq!(hids, 2);
        assert!(dsdt.windows(4).any(|w| w == b"V001"));
        // Memory32Fixed descriptor (0x86, length 9, read-write) with the second window's base.
        let mut fixed = vec![0x86, 9, 0, 1];
        fixed.extend_from_slice(&0xd000_1000u32.to_le_bytes());
        fixed.extend_from_slice(&0x1000u32.to_le_bytes());
        assert!(dsdt.windows(fixed.len()).any(|w| w == fixed.as_slice()));
        let err = build_tables(
            1,
            &[VirtioMmio {
                base: 1 << 32,
                gsi: 5,
            }],
        );
        assert!(matches!(err, Err(AcpiError::VirtioAbove4G(_))));
    }

    #[test]
    fn madt_has_a_local_apic_per_vcpu_and_an_ioapic() {
        let tables = build_tables(3, &[]).expect("tables");
        let (_, madt) = table(&tables, b"APIC");
        assert_eq!(le32(madt, 36), APIC_ADDR);
        let mut off = 44;
        let mut lapic_ids = Vec::new();
        let mut ioapics = 0;
        while off < madt.len() {
            match madt[off] {
                0 => lapic_ids.push((madt[off + 3], le32(madt, off + 4))),
                1 => {
                    ioapics += 1;
                    assert_eq!(le32(madt, off + 4), IOAPIC_ADDR);
                }
                t => panic!("unexpected MADT structure {t}"),
            }
            off += usize::from(madt[off + 1]);
        }
        assert_eq!(lapic_ids, vec![(0, 1), (1, 1), (2, 1)]);
        assert_eq!(ioapics, 1);
    }

    #[test]
    fn vcpu_limit() {
        assert!(matches!(
            build_tables(255, &[]),
            Err(AcpiError::TooManyVcpus(255))
        ));
    }

    #[test]
    fn tables_fit_below_1mib() {
        let tables = build_tables(254, &[]).expect("tables");
        let (addr, last) = tables.last().expect("table");
        assert!(addr + last.len() as u64 <= ACPI_END);
    }
}
