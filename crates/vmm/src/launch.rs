//! What the `hull` front-end hands the `hull-vmm` binary, the process that is the VMM (in its
//! jail, or not with --no-jail): the VM, the guest's run spec, and how to serve it. One JSON
//! argument, so the VMM parses no command line of its own and links no argument parser.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::proto::RunSpec;
use crate::VmConfig;

/// The name of a VM's API socket in its directory (`hull vm run --name`).
pub const API_SOCKET: &str = "api.sock";

/// The command line a stock kernel needs on hull-vmm: the console on COM1, reset (the only way
/// a microVM's guest ends) through the i8042, no PCI bus to probe, no keyboard or mouse.
pub const STOCK_CMDLINE: &str = "console=ttyS0 reboot=k panic=-1 pci=off i8042.noaux i8042.nokbd";

/// One VMM's orders.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Launch {
    pub vm: VmConfig,
    /// The command for hull-guest; None: a bare VM whose consoles print on stdout.
    pub spec: Option<RunSpec>,
    /// Pass the VMM's stdin to the command (else its stdin is closed at once).
    pub interactive: bool,
    /// Print the exit counters and timings to stderr when the VM stops.
    pub stats: bool,
    /// Where to bind the API socket ([`API_SOCKET`]) for `hull vm exec`.
    pub api_dir: Option<PathBuf>,
    /// The VMM removes `api_dir` when it ends (no jailing process outlives it to do so).
    pub remove_api_dir: bool,
    /// The engine's monitor (`hull run --isolation vm --vmm hull`): the agent channel goes,
    /// frame for frame, to this unix socket (connected to; relative to the VMM's working
    /// directory), where the monitor speaks hull-vmproto itself, as it does through qemu's
    /// chardev; the guest's consoles go to stdout. `spec` is then None: the monitor sends it.
    #[serde(default)]
    pub agent_socket: Option<PathBuf>,
}
