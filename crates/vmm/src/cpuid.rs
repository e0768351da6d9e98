//! CPUID for each vCPU: what KVM supports (KVM_GET_SUPPORTED_CPUID), normalised the way
//! Firecracker does so a stock Linux sees a hypervisor, finds the KVM leaves (kvm-clock instead of
//! calibrating the TSC), and counts its vCPUs by their APIC ids.

use kvm_bindings::kvm_cpuid_entry2;

const LEAF_FEATURES: u32 = 0x1;
const LEAF_CACHE_PARAMS: u32 = 0x4;
const LEAF_PMU: u32 = 0xa;
const LEAF_TOPOLOGY: u32 = 0xb;
const LEAF_KVM_SIGNATURE: u32 = 0x4000_0000;
const LEAF_AMD_SIZES: u32 = 0x8000_0008;
const LEAF_AMD_TOPOLOGY: u32 = 0x8000_001e;

/// Leaf 1 ECX: running under a hypervisor. Without it Linux never looks at 0x4000_0000.
const ECX_HYPERVISOR: u32 = 1 << 31;
/// Leaf 1 ECX: the LAPIC timer has TSC-deadline mode (KVM emulates it).
const ECX_TSC_DEADLINE: u32 = 1 << 24;
/// Leaf 1 EDX: EBX[23:16] holds a meaningful logical processor count.
const EDX_HTT: u32 = 1 << 28;
/// Leaf 0xb ECX[15:8] level types.
const LEVEL_SMT: u32 = 1;
const LEVEL_CORE: u32 = 2;

/// Rewrites `entries` (KVM's supported set) for vCPU `index` of `count`: one core per vCPU, one
/// package, APIC id = index.
pub fn normalize(entries: &mut [kvm_cpuid_entry2], index: u8, count: u8) {
    let index = u32::from(index);
    let count = u32::from(count.max(1));
    for e in entries.iter_mut() {
        match e.function {
            LEAF_FEATURES => {
                // EBX: APIC id [31:24], logical processors [23:16], CLFLUSH line in qwords [15:8].
                e.ebx = (index << 24) | (count << 16) | (8 << 8) | (e.ebx & 0xff);
                e.ecx |= ECX_HYPERVISOR | ECX_TSC_DEADLINE;
                if count > 1 {
                    e.edx |= EDX_HTT;
                } else {
                    e.edx &= !EDX_HTT;
                }
            }
            LEAF_CACHE_PARAMS => {
                // EAX[31:26]: cores per package - 1; EAX[25:14]: threads sharing this cache - 1.
                e.eax &= 0x3fff;
                e.eax |= (count - 1) << 26;
            }
            // No PMU: the guest's perf probing would otherwise touch MSRs KVM may not emulate.
            LEAF_PMU => (e.eax, e.ebx, e.ecx, e.edx) = (0, 0, 0, 0),
            LEAF_TOPOLOGY => {
                // EDX is the x2APIC id at every level; EAX the id bits below the next level.
                e.edx = index;
                match e.index {
                    0 => {
                        e.eax = 0;
                        e.ebx = 1;
                        e.ecx = (LEVEL_SMT << 8) | e.index;
                    }
                    1 => {
                        e.eax = bits_for(count);
                        e.ebx = count;
                        e.ecx = (LEVEL_CORE << 8) | e.index;
                    }
                    _ => {
                        e.eax = 0;
                        e.ebx = 0;
                        e.ecx = e.index;
                    }
                }
            }
            // ECX[7:0]: cores in the package - 1 (AMD).
            LEAF_AMD_SIZES => e.ecx = (e.ecx & !0xff) | (count - 1),
            LEAF_AMD_TOPOLOGY => {
                e.eax = index; // extended APIC id
                e.ebx = index; // core id; threads per core - 1 = 0 in [15:8]
                e.ecx = 0; // node 0, one node per package
                e.edx = 0;
            }
            _ => {}
        }
    }
}

/// Whether the set carries KVM's signature leaf ("KVMKVMKVM"), which kvm-clock needs.
pub fn has_kvm_leaves(entries: &[kvm_cpuid_entry2]) -> bool {
    entries.iter().any(|e| {
        e.function == LEAF_KVM_SIGNATURE
            && (e.ebx, e.ecx, e.edx) == (0x4b4d_564b, 0x564b_4d56, 0x4d)
    })
}

/// How many bits an id for `n` things needs.
fn bits_for(n: u32) -> u32 {
    if n <= 1 {
        0
    } else {
        32 - (n - 1).leading_zeros()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(function: u32, index: u32) -> kvm_cpuid_entry2 {
        kvm_cpuid_entry2 {
            function,
            index,
            eax: 0xffff_ffff,
            ebx: 0xffff_ffff,
            ecx: 0,
            edx: 0,
            ..Default::default()
        }
    }

    fn find(entries: &[kvm_cpuid_entry2], function: u32, index: u32) -> kvm_cpuid_entry2 {
        *entries
            .iter()
            .find(|e| e.function == function && e.index == index)
            .expect("leaf")
    }

    #[test]
    fn leaf1_has_hypervisor_bit_and_apic_id() {
        let mut set = vec![entry(1, 0)];
        normalize(&mut set, 3, 4);
        let e = find(&set, 1, 0);
        assert_ne!(e.ecx & ECX_HYPERVISOR, 0);
        assert_eq!(e.ebx >> 24, 3);
        assert_eq!((e.ebx >> 16) & 0xff, 4);
        assert_eq!((e.ebx >> 8) & 0xff, 8);
        assert_ne!(e.edx & EDX_HTT, 0);
    }

    #[test]
    fn single_vcpu_clears_htt() {
        let mut set = vec![entry(1, 0)];
        set[0].edx = EDX_HTT;
        normalize(&mut set, 0, 1);
        assert_eq!(find(&set, 1, 0).edx & EDX_HTT, 0);
    }

    #[test]
    fn topology_leaves_carry_x2apic_id_and_counts() {
        let mut set = vec![entry(0xb, 0), entry(0xb, 1), entry(0xb, 2)];
        normalize(&mut set, 1, 2);
        let smt = find(&set, 0xb, 0);
        let core = find(&set, 0xb, 1);
        let end = find(&set, 0xb, 2);
        assert_eq!((smt.ebx, smt.ecx >> 8, smt.edx), (1, LEVEL_SMT, 1));
        assert_eq!(
            (core.eax, core.ebx, core.ecx >> 8, core.edx),
            (1, 2, LEVEL_CORE, 1)
        );
        assert_eq!((end.ebx, end.ecx >> 8), (0, 0));
    }

    #[test]
    fn amd_leaves_count_cores() {
        let mut set = vec![entry(LEAF_AMD_SIZES, 0), entry(LEAF_AMD_TOPOLOGY, 0)];
        normalize(&mut set, 2, 3);
        assert_eq!(find(&set, LEAF_AMD_SIZES, 0).ecx & 0xff, 2);
        assert_eq!(find(&set, LEAF_AMD_TOPOLOGY, 0).eax, 2);
    }

    #[test]
    fn pmu_is_hidden() {
        let mut set = vec![entry(LEAF_PMU, 0)];
        normalize(&mut set, 0, 1);
        assert_eq!(find(&set, LEAF_PMU, 0).eax, 0);
    }

    #[test]
    fn kvm_signature_is_recognised() {
        let mut kvm = entry(LEAF_KVM_SIGNATURE, 0);
        (kvm.ebx, kvm.ecx, kvm.edx) = (0x4b4d_564b, 0x564b_4d56, 0x4d);
        assert!(has_kvm_leaves(&[kvm]));
        assert!(!has_kvm_leaves(&[entry(1, 0)]));
    }

    #[test]
    fn id_bits() {
        assert_eq!(
            (
                bits_for(1),
                bits_for(2),
                bits_for(3),
                bits_for(4),
                bits_for(5)
            ),
            (0, 1, 2, 2, 3)
        );
    }
}
