//! The protocol between the host (hull-vmm's `agent` side) and hull-guest, the microVM's PID 1,
//! over one virtio-console port: a stream of frames, each `len: u32 LE` then `kind: u8`,
//! `id: u32 LE` (the process it is about; 0 is the VM's main process) and a payload. Process
//! specs travel as JSON, stream data as raw bytes. Both sides use this one module, so they
//! cannot disagree on the bytes.

use serde::{Deserialize, Serialize};

/// The name the VMM gives the agent's virtio-console port; the guest looks it up in
/// /sys/class/virtio-ports/*/name.
pub const PORT_NAME: &str = "org.hull.agent";
/// The id of the process `Run` starts; `Exec` processes take ids the host chooses, above it.
pub const MAIN_ID: u32 = 0;
/// Frames larger than this are a protocol error (a desynchronised stream, not a real frame).
pub const MAX_FRAME: usize = 1 << 20;
/// The largest data chunk a sender puts in one frame.
pub const MAX_CHUNK: usize = 64 * 1024;
const HEADER: usize = 4 + 1 + 4;

/// The root file system the guest mounts for the processes: a virtio-blk disk found by its
/// serial (VIRTIO_BLK_T_GET_ID), ext4 or erofs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RootSpec {
    pub serial: String,
    /// Mount the disk read-only under an overlay whose upper layer is a tmpfs, so the process
    /// can write and the disk stays as it was.
    pub overlay: bool,
    /// The disk itself is read-only (mount it `ro`; without `overlay` the root is read-only).
    pub read_only: bool,
    /// More read-only disks (by serial) stacked below `serial`'s in the overlay, top first:
    /// an image's layers, one erofs disk each. Needs `overlay`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lower_serials: Vec<String>,
}

/// One process, with the OCI `process` fields the guest applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessSpec {
    pub args: Vec<String>,
    /// `NAME=value` entries; PATH from here decides how args[0] is found.
    pub env: Vec<String>,
    pub cwd: String,
    pub uid: u32,
    pub gid: u32,
    #[serde(default)]
    pub additional_gids: Vec<u32>,
    /// Run on a pseudo-terminal (stdout and stderr are then one stream, `Stdout`).
    #[serde(default)]
    pub terminal: bool,
    /// OCI `process.rlimits`, set before the user changes.
    #[serde(default)]
    pub rlimits: Vec<Rlimit>,
    /// OCI `process.noNewPrivileges`.
    #[serde(default)]
    pub no_new_privileges: bool,
    /// `USER[:GROUP]` as `-u` gives it, names or numbers: the guest resolves it against its
    /// root's /etc/passwd and /etc/group (the host cannot see inside the root disk), and it
    /// replaces `uid`, `gid` and the groups of /etc/group that list the user come first in
    /// `additional_gids`. None: `uid` and `gid` as they are.
    #[serde(default)]
    pub user: Option<String>,
    /// OCI `process.capabilities`; None keeps every capability (root's in a VM).
    #[serde(default)]
    pub capabilities: Option<Capabilities>,
    /// The compiled OCI `linux.seccomp` filter, loaded last before execve.
    #[serde(default)]
    pub seccomp: Option<SeccompFilter>,
}

/// The five capability sets of OCI `process.capabilities`, by name (`CAP_CHOWN`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    #[serde(default)]
    pub bounding: Vec<String>,
    #[serde(default)]
    pub effective: Vec<String>,
    #[serde(default)]
    pub permitted: Vec<String>,
    #[serde(default)]
    pub inheritable: Vec<String>,
    #[serde(default)]
    pub ambient: Vec<String>,
}

/// A seccomp filter compiled on the host (by hull-runtime's compiler, so the guest needs no
/// libseccomp), for seccomp(SECCOMP_SET_MODE_FILTER, flags).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeccompFilter {
    /// SECCOMP_FILTER_FLAG_* bits.
    pub flags: u32,
    /// The `struct sock_filter` array in the guest's byte order, hex: 16 digits an instruction.
    pub program: String,
}

/// One BPF instruction: `struct sock_filter`'s code, jt, jf and k.
pub type BpfInstruction = (u16, u8, u8, u32);

impl SeccompFilter {
    pub fn new(flags: u32, program: &[BpfInstruction]) -> Self {
        let mut hex = String::with_capacity(program.len() * 16);
        for (code, jt, jf, k) in program {
            let mut b = code.to_ne_bytes().to_vec();
            b.extend([*jt, *jf]);
            b.extend(k.to_ne_bytes());
            for byte in b {
                hex.push_str(&format!("{byte:02x}"));
            }
        }
        Self {
            flags,
            program: hex,
        }
    }

    /// The instructions back; an error names what is wrong with the text.
    pub fn instructions(&self) -> Result<Vec<BpfInstruction>, ProtoError> {
        let bad = |why: &str| ProtoError::Payload {
            what: "seccomp",
            why: why.into(),
        };
        if !self.program.len().is_multiple_of(16) {
            return Err(bad("the program is not whole instructions"));
        }
        let bytes = (0..self.program.len())
            .step_by(2)
            .map(|i| {
                self.program
                    .get(i..i + 2)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or_else(|| bad("the program is not hex"))
            })
            .collect::<Result<Vec<u8>, _>>()?;
        Ok(bytes
            .chunks_exact(8)
            .map(|c| {
                (
                    u16::from_ne_bytes([c[0], c[1]]),
                    c[2],
                    c[3],
                    u32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
                )
            })
            .collect())
    }
}

/// One resource limit, as OCI writes it (`RLIMIT_NOFILE`, soft, hard).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rlimit {
    #[serde(rename = "type")]
    pub kind: String,
    pub soft: u64,
    pub hard: u64,
}

/// The VM-wide settings and the main process, sent once.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    pub hostname: String,
    pub root: Option<RootSpec>,
    pub process: ProcessSpec,
    /// The network interfaces the guest configures before the process runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<InterfaceSpec>,
    /// Files the guest puts in the process's root before it runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<FileSpec>,
}

/// One network interface of the guest: the NIC whose MAC is `mac` (the host gives the VM's
/// virtio-net device the MAC of the container's interface it mirrors), named, sized and
/// addressed as that interface is on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InterfaceSpec {
    pub name: String,
    /// `aa:bb:cc:dd:ee:ff`.
    pub mac: String,
    pub mtu: u32,
    /// IPv4 addresses and their prefix lengths.
    pub addresses: Vec<(std::net::Ipv4Addr, u8)>,
    /// The default route's gateway, through this interface.
    #[serde(default)]
    pub gateway: Option<std::net::Ipv4Addr>,
}

/// A file of the process's root that the host writes (a container's /etc/hosts, /etc/hostname,
/// /etc/resolv.conf): the guest binds it over `path`, as a container runtime binds them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSpec {
    /// Absolute, in the process's root.
    pub path: String,
    pub contents: String,
}

/// How a process ended, as a shell reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(i32),
}

impl ExitStatus {
    /// The exit code docker reports: the code, or 128 + the signal number.
    pub fn code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => c,
            ExitStatus::Signal(s) => 128 + s,
        }
    }
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// host -> guest: the settings and main process (id 0).
    Run(RunSpec),
    /// host -> guest: start another process in the running VM, under `id`.
    Exec { id: u32, spec: ProcessSpec },
    /// host -> guest: bytes for the process's stdin.
    Stdin { id: u32, data: Vec<u8> },
    /// host -> guest: the process's stdin reached its end.
    StdinClose { id: u32 },
    /// host -> guest: deliver signal `signal` to the process.
    Signal { id: u32, signal: i32 },
    /// host -> guest: the terminal's new size.
    Resize { id: u32, rows: u16, cols: u16 },
    /// guest -> host: the agent is up and read its port (the end of the boot).
    Ready,
    /// guest -> host: the process runs.
    Started { id: u32 },
    /// guest -> host: output on the process's stdout (or terminal).
    Stdout { id: u32, data: Vec<u8> },
    /// guest -> host: output on the process's stderr.
    Stderr { id: u32, data: Vec<u8> },
    /// guest -> host: the process ended; its output was all sent before.
    Exit { id: u32, status: ExitStatus },
    /// guest -> host: the process could not be started (or the VM not set up, id 0).
    Error { id: u32, message: String },
    /// guest -> host: `bytes` of the process's stdin left the agent (written to the process,
    /// or dropped when it closed its stdin or ended): the host's credit to send that much more.
    /// A host keeps at most [`STDIN_WINDOW`] bytes of a process's stdin unacknowledged, so
    /// neither side buffers more however fast the input and however slow the reader.
    StdinConsumed { id: u32, bytes: u32 },
}

/// The most stdin bytes of one process in flight between host and guest.
pub const STDIN_WINDOW: usize = 1 << 20;

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ProtoError {
    #[error("frame of {0} bytes is larger than the protocol's limit")]
    TooLarge(usize),
    #[error("frame shorter than its header")]
    Short,
    #[error("unknown frame kind {0}")]
    Kind(u8),
    #[error("bad {what} payload: {why}")]
    Payload { what: &'static str, why: String },
}

const K_RUN: u8 = 1;
const K_EXEC: u8 = 2;
const K_STDIN: u8 = 3;
const K_STDIN_CLOSE: u8 = 4;
const K_SIGNAL: u8 = 5;
const K_RESIZE: u8 = 6;
const K_READY: u8 = 64;
const K_STARTED: u8 = 65;
const K_STDOUT: u8 = 66;
const K_STDERR: u8 = 67;
const K_EXIT: u8 = 68;
const K_ERROR: u8 = 69;
const K_STDIN_CONSUMED: u8 = 70;

fn json<T: Serialize>(v: &T) -> Vec<u8> {
    // Serialising plain structs of strings and numbers cannot fail.
    serde_json::to_vec(v).unwrap_or_default()
}

fn i32_at(p: &[u8], what: &'static str) -> Result<i32, ProtoError> {
    let b: [u8; 4] = p
        .get(..4)
        .and_then(|b| b.try_into().ok())
        .ok_or(ProtoError::Payload {
            what,
            why: "shorter than 4 bytes".into(),
        })?;
    Ok(i32::from_le_bytes(b))
}

impl Message {
    fn parts(&self) -> (u8, u32, Vec<u8>) {
        match self {
            Message::Run(spec) => (K_RUN, MAIN_ID, json(spec)),
            Message::Exec { id, spec } => (K_EXEC, *id, json(spec)),
            Message::Stdin { id, data } => (K_STDIN, *id, data.clone()),
            Message::StdinClose { id } => (K_STDIN_CLOSE, *id, Vec::new()),
            Message::Signal { id, signal } => (K_SIGNAL, *id, signal.to_le_bytes().to_vec()),
            Message::Resize { id, rows, cols } => {
                let mut p = rows.to_le_bytes().to_vec();
                p.extend_from_slice(&cols.to_le_bytes());
                (K_RESIZE, *id, p)
            }
            Message::Ready => (K_READY, MAIN_ID, Vec::new()),
            Message::Started { id } => (K_STARTED, *id, Vec::new()),
            Message::Stdout { id, data } => (K_STDOUT, *id, data.clone()),
            Message::Stderr { id, data } => (K_STDERR, *id, data.clone()),
            Message::Exit { id, status } => {
                let (kind, n) = match status {
                    ExitStatus::Code(c) => (0u8, *c),
                    ExitStatus::Signal(s) => (1u8, *s),
                };
                let mut p = vec![kind];
                p.extend_from_slice(&n.to_le_bytes());
                (K_EXIT, *id, p)
            }
            Message::Error { id, message } => (K_ERROR, *id, message.as_bytes().to_vec()),
            Message::StdinConsumed { id, bytes } => {
                (K_STDIN_CONSUMED, *id, bytes.to_le_bytes().to_vec())
            }
        }
    }

    /// The frame's bytes.
    pub fn encode(&self) -> Vec<u8> {
        let (kind, id, payload) = self.parts();
        let len = u32::try_from(1 + 4 + payload.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(HEADER + payload.len());
        out.extend_from_slice(&len.to_le_bytes());
        out.push(kind);
        out.extend_from_slice(&id.to_le_bytes());
        out.extend_from_slice(&payload);
        out
    }

    fn decode(kind: u8, id: u32, p: &[u8]) -> Result<Self, ProtoError> {
        let from_json = |what| {
            move |e: serde_json::Error| ProtoError::Payload {
                what,
                why: e.to_string(),
            }
        };
        Ok(match kind {
            K_RUN => Message::Run(serde_json::from_slice(p).map_err(from_json("run"))?),
            K_EXEC => Message::Exec {
                id,
                spec: serde_json::from_slice(p).map_err(from_json("exec"))?,
            },
            K_STDIN => Message::Stdin {
                id,
                data: p.to_vec(),
            },
            K_STDIN_CLOSE => Message::StdinClose { id },
            K_SIGNAL => Message::Signal {
                id,
                signal: i32_at(p, "signal")?,
            },
            K_RESIZE => {
                let n = i32_at(p, "resize")?.to_le_bytes();
                Message::Resize {
                    id,
                    rows: u16::from_le_bytes([n[0], n[1]]),
                    cols: u16::from_le_bytes([n[2], n[3]]),
                }
            }
            K_READY => Message::Ready,
            K_STARTED => Message::Started { id },
            K_STDOUT => Message::Stdout {
                id,
                data: p.to_vec(),
            },
            K_STDERR => Message::Stderr {
                id,
                data: p.to_vec(),
            },
            K_EXIT => {
                let n = i32_at(p.get(1..).unwrap_or_default(), "exit")?;
                let status = match p.first() {
                    Some(0) => ExitStatus::Code(n),
                    Some(1) => ExitStatus::Signal(n),
                    _ => {
                        return Err(ProtoError::Payload {
                            what: "exit",
                            why: "unknown status kind".into(),
                        })
                    }
                };
                Message::Exit { id, status }
            }
            K_ERROR => Message::Error {
                id,
                message: String::from_utf8_lossy(p).into_owned(),
            },
            K_STDIN_CONSUMED => Message::StdinConsumed {
                id,
                bytes: u32::from_le_bytes(i32_at(p, "stdin consumed")?.to_le_bytes()),
            },
            k => return Err(ProtoError::Kind(k)),
        })
    }
}

/// Gathers a byte stream into messages: `push` what arrived, then `next` until `None`.
#[derive(Debug, Default)]
pub struct Decoder {
    buf: Vec<u8>,
}

impl Decoder {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete message, `None` while a frame is incomplete. After an error the stream
    /// cannot be resynchronised.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Message>, ProtoError> {
        let Some(len) = self.buf.get(..4) else {
            return Ok(None);
        };
        let len = u32::from_le_bytes([len[0], len[1], len[2], len[3]]) as usize;
        if len > MAX_FRAME {
            return Err(ProtoError::TooLarge(len));
        }
        if len < 5 {
            return Err(ProtoError::Short);
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let frame: Vec<u8> = self.buf.drain(..4 + len).collect();
        let id = u32::from_le_bytes([frame[5], frame[6], frame[7], frame[8]]);
        Message::decode(frame[4], id, &frame[HEADER..]).map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> ProcessSpec {
        ProcessSpec {
            args: vec!["sh".into(), "-c".into(), "echo hi".into()],
            env: vec!["PATH=/bin".into()],
            cwd: "/".into(),
            uid: 1000,
            gid: 100,
            additional_gids: vec![10, 20],
            terminal: false,
            rlimits: vec![Rlimit {
                kind: "RLIMIT_NOFILE".into(),
                soft: 64,
                hard: 128,
            }],
            no_new_privileges: true,
            user: Some("nobody:users".into()),
            capabilities: Some(Capabilities {
                bounding: vec!["CAP_CHOWN".into()],
                ambient: vec!["CAP_KILL".into()],
                ..Capabilities::default()
            }),
            seccomp: Some(SeccompFilter::new(4, &[(6, 0, 0, 0x7fff_0000)])),
        }
    }

    fn all() -> Vec<Message> {
        vec![
            Message::Run(RunSpec {
                hostname: "vm".into(),
                root: Some(RootSpec {
                    serial: "hull0".into(),
                    overlay: true,
                    read_only: true,
                    lower_serials: Vec::new(),
                }),
                process: spec(),
                interfaces: vec![InterfaceSpec {
                    name: "eth0".into(),
                    mac: "02:00:00:00:00:01".into(),
                    mtu: 1500,
                    addresses: vec![("10.1.2.3".parse().unwrap(), 24)],
                    gateway: Some("10.1.2.1".parse().unwrap()),
                }],
                files: vec![FileSpec {
                    path: "/etc/hosts".into(),
                    contents: "127.0.0.1 localhost\n".into(),
                }],
            }),
            Message::Exec {
                id: 7,
                spec: spec(),
            },
            Message::Stdin {
                id: 0,
                data: b"in".to_vec(),
            },
            Message::StdinClose { id: 3 },
            Message::Signal { id: 0, signal: 15 },
            Message::Resize {
                id: 1,
                rows: 50,
                cols: 132,
            },
            Message::Ready,
            Message::Started { id: 2 },
            Message::Stdout {
                id: 0,
                data: vec![0, 255, 10],
            },
            Message::Stderr {
                id: 0,
                data: b"err\n".to_vec(),
            },
            Message::Exit {
                id: 0,
                status: ExitStatus::Code(3),
            },
            Message::Exit {
                id: 9,
                status: ExitStatus::Signal(9),
            },
            Message::Error {
                id: 0,
                message: "no such file".into(),
            },
            Message::StdinConsumed {
                id: 4,
                bytes: 0xfff0_0001,
            },
        ]
    }

    #[test]
    fn every_message_round_trips_through_a_byte_at_a_time_stream() {
        let stream: Vec<u8> = all().iter().flat_map(Message::encode).collect();
        let mut d = Decoder::default();
        let mut got = Vec::new();
        for b in stream {
            d.push(&[b]);
            while let Some(m) = d.next().expect("valid") {
                got.push(m);
            }
        }
        assert_eq!(got, all());
    }

    #[test]
    fn frame_layout_is_length_kind_id_payload() {
        let f = Message::Stderr {
            id: 2,
            data: b"x".to_vec(),
        }
        .encode();
        assert_eq!(f, [6, 0, 0, 0, K_STDERR, 2, 0, 0, 0, b'x']);
        let f = Message::Exit {
            id: 0,
            status: ExitStatus::Signal(15),
        }
        .encode();
        assert_eq!(&f[9..], [1, 15, 0, 0, 0]);
    }

    #[test]
    fn bad_frames_are_errors() {
        let mut d = Decoder::default();
        d.push(&(u32::try_from(MAX_FRAME + 1).unwrap()).to_le_bytes());
        assert_eq!(d.next(), Err(ProtoError::TooLarge(MAX_FRAME + 1)));
        let mut d = Decoder::default();
        d.push(&[2, 0, 0, 0, 1, 0]);
        assert_eq!(d.next(), Err(ProtoError::Short));
        let mut d = Decoder::default();
        d.push(&[5, 0, 0, 0, 200, 0, 0, 0, 0]);
        assert_eq!(d.next(), Err(ProtoError::Kind(200)));
        let mut d = Decoder::default();
        d.push(&[7, 0, 0, 0, K_SIGNAL, 0, 0, 0, 0, 1, 2]);
        assert!(matches!(
            d.next(),
            Err(ProtoError::Payload { what: "signal", .. })
        ));
        let mut d = Decoder::default();
        d.push(&[6, 0, 0, 0, K_RUN, 0, 0, 0, 0, b'{']);
        assert!(matches!(
            d.next(),
            Err(ProtoError::Payload { what: "run", .. })
        ));
    }

    #[test]
    fn seccomp_programs_survive_hex_and_bad_text_is_an_error() {
        let prog = [
            (0x20, 0, 0, 4),
            (0x15, 1, 0, 0xc000_003e),
            (6, 0, 0, 0x7fff_0000),
        ];
        let f = SeccompFilter::new(1, &prog);
        assert_eq!(f.program.len(), 48);
        assert_eq!(f.instructions().unwrap(), prog);
        for bad in ["abc", "zz00000000000000"] {
            let f = SeccompFilter {
                flags: 0,
                program: bad.into(),
            };
            assert!(f.instructions().is_err(), "{bad}");
        }
    }

    #[test]
    fn process_specs_without_the_newer_fields_still_decode() {
        let old = r#"{"args":["true"],"env":[],"cwd":"/","uid":0,"gid":0}"#;
        let p: ProcessSpec = serde_json::from_str(old).unwrap();
        assert_eq!(p.user, None);
        assert_eq!(p.capabilities, None);
        assert_eq!(p.seccomp, None);
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        assert_eq!(ExitStatus::Code(3).code(), 3);
        assert_eq!(ExitStatus::Signal(9).code(), 137);
    }
}
