//! What `hull-runtime features` reports under `linux.seccomp`: the actions, operators,
//! architectures and filter flags this build and this kernel support.

use std::str::FromStr;

use libseccomp::{ScmpAction, ScmpArch, ScmpFilterContext};
use oci_spec::runtime::LinuxSeccompFilterFlag;
use serde_json::json;

use super::error::spec_name;
use super::seccomp::{flag_bit, flag_supported};

const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

const ARCHS: &[&str] = &[
    "SCMP_ARCH_AARCH64",
    "SCMP_ARCH_ARM",
    "SCMP_ARCH_LOONGARCH64",
    "SCMP_ARCH_M68K",
    "SCMP_ARCH_MIPS",
    "SCMP_ARCH_MIPS64",
    "SCMP_ARCH_MIPS64N32",
    "SCMP_ARCH_MIPSEL",
    "SCMP_ARCH_MIPSEL64",
    "SCMP_ARCH_MIPSEL64N32",
    "SCMP_ARCH_PARISC",
    "SCMP_ARCH_PARISC64",
    "SCMP_ARCH_PPC",
    "SCMP_ARCH_PPC64",
    "SCMP_ARCH_PPC64LE",
    "SCMP_ARCH_RISCV64",
    "SCMP_ARCH_S390",
    "SCMP_ARCH_S390X",
    "SCMP_ARCH_SH",
    "SCMP_ARCH_SHEB",
    "SCMP_ARCH_X32",
    "SCMP_ARCH_X86",
    "SCMP_ARCH_X86_64",
];

const FLAGS: &[LinuxSeccompFilterFlag] = &[
    LinuxSeccompFilterFlag::SeccompFilterFlagLog,
    LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow,
    LinuxSeccompFilterFlag::SeccompFilterFlagTsync,
    LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv,
];

/// Architectures that the OCI types accept and the linked libseccomp can put in a filter next
/// to the native one (a fresh context each: a failed add_arch leaves a context unreliable).
fn archs() -> Vec<&'static str> {
    ARCHS
        .iter()
        .copied()
        .filter(|a| serde_json::from_value::<oci_spec::runtime::Arch>(json!(a)).is_ok())
        .filter(|a| {
            let Ok(arch) = ScmpArch::from_str(a) else {
                return false;
            };
            ScmpFilterContext::new(ScmpAction::Allow)
                .is_ok_and(|mut ctx| ctx.add_arch(arch).is_ok())
        })
        .collect()
}

/// The runtime-spec features.md `linux.seccomp` object.
pub fn seccomp_features() -> serde_json::Value {
    let known: Vec<String> = FLAGS.iter().map(spec_name).collect();
    let supported: Vec<String> = FLAGS
        .iter()
        .filter(|f| flag_supported(flag_bit(**f)))
        .map(spec_name)
        .collect();
    json!({
        "enabled": true,
        "actions": ACTIONS,
        "operators": OPERATORS,
        "archs": archs(),
        "knownFlags": known,
        "supportedFlags": supported,
    })
}
