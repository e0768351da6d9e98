//! The agent port: found by name under /sys/class/virtio-ports, opened as /dev/vportNpM, read
//! into hull-vmproto's decoder and written one whole frame per write(2).

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use hull_vmproto::{Decoder, Message, PORT_NAME};

/// How long the port may take to appear after virtio_console loads (the control queue
/// exchange runs in the driver's work queue).
const PORT_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct Channel {
    file: File,
    decoder: Decoder,
}

fn find_port() -> Option<PathBuf> {
    for entry in std::fs::read_dir("/sys/class/virtio-ports").ok()?.flatten() {
        let name = std::fs::read_to_string(entry.path().join("name")).unwrap_or_default();
        if name.trim_end() == PORT_NAME {
            return Some(PathBuf::from("/dev").join(entry.file_name()));
        }
    }
    None
}

impl Channel {
    pub fn open() -> anyhow::Result<Self> {
        let start = Instant::now();
        let path = loop {
            if let Some(p) = find_port().filter(|p| p.exists()) {
                break p;
            }
            if start.elapsed() > PORT_WAIT {
                bail!("no virtio-console port named {PORT_NAME} after {PORT_WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("cannot open the agent port {}", path.display()))?;
        Ok(Self {
            file,
            decoder: Decoder::default(),
        })
    }

    pub fn send(&mut self, m: &Message) -> anyhow::Result<()> {
        self.file
            .write_all(&m.encode())
            .context("cannot write to the agent port")
    }

    /// The next message already read, without reading more.
    pub fn buffered(&mut self) -> anyhow::Result<Option<Message>> {
        Ok(self.decoder.next()?)
    }

    /// Reads once (blocking) and feeds the decoder; false at end of stream.
    pub fn fill(&mut self) -> anyhow::Result<bool> {
        let mut buf = [0u8; 16384];
        let n = self
            .file
            .read(&mut buf)
            .context("cannot read the agent port")?;
        self.decoder.push(&buf[..n]);
        Ok(n > 0)
    }

    /// The next message, reading as needed; `None` at end of stream.
    pub fn recv(&mut self) -> anyhow::Result<Option<Message>> {
        loop {
            if let Some(m) = self.buffered()? {
                return Ok(Some(m));
            }
            if !self.fill()? {
                return Ok(None);
            }
        }
    }

    pub fn fd(&self) -> BorrowedFd<'_> {
        self.file.as_fd()
    }
}
