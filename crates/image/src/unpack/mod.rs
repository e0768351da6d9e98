//! Safe layer unpacking: a (possibly compressed) tar stream becomes an overlay lower dir.
//!
//! Every path is resolved inside the layer dir with `openat2(RESOLVE_IN_ROOT)`, and every final
//! component is created with `*at` calls that never follow a symlink, so no entry of a hostile
//! layer can write outside the layer dir. OCI whiteouts become overlay whiteouts.

mod entry;
mod pipe;
mod root;

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use crate::digest::Digest;

pub use root::LayerRoot;

/// Errors from unpacking a layer; each names the entry it concerns.
#[derive(Debug, thiserror::Error)]
pub enum UnpackError {
    #[error("layer entry {entry:?} rejected: {reason}")]
    Rejected { entry: String, reason: String },
    #[error("layer entry {entry:?}: {err}")]
    Entry { entry: String, err: io::Error },
    #[error("reading layer archive: {0}")]
    Read(io::Error),
    #[error("opening layer dir {path}: {err}")]
    Dest { path: String, err: io::Error },
}

/// Compression of a layer stream, detected from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

impl Compression {
    /// Detects gzip and zstd by their magic numbers; anything else is taken as a plain tar.
    pub fn detect(head: &[u8]) -> Self {
        if head.starts_with(&[0x1f, 0x8b]) {
            Compression::Gzip
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Compression::Zstd
        } else {
            Compression::None
        }
    }

    /// The OCI layer media type for a tar with this compression.
    pub fn oci_media_type(self) -> &'static str {
        match self {
            Compression::None => crate::manifest::MT_LAYER_TAR,
            Compression::Gzip => crate::manifest::MT_LAYER_GZIP,
            Compression::Zstd => crate::manifest::MT_LAYER_ZSTD,
        }
    }
}

/// What the unpacker accepts.
#[derive(Debug, Clone)]
pub struct UnpackOptions {
    /// Create block and character devices (other than whiteouts); refused when false.
    pub allow_devices: bool,
    /// Start each file's writeback as soon as it is written (the caller flushes the store
    /// once at the end): a pull overlaps the disk writes with the rest of its work.
    pub start_writeback: bool,
    /// Turn OCI whiteouts (`.wh.NAME`, `.wh..wh..opq`) into overlay ones; when false (a tar a
    /// user copies into a container) they are plain files like any other.
    pub whiteouts: bool,
    /// Owner (uid, gid) given to every entry instead of the header's (`cp` without `-a`).
    pub owner: Option<(u32, u32)>,
}

impl Default for UnpackOptions {
    fn default() -> Self {
        Self {
            allow_devices: true,
            start_writeback: false,
            whiteouts: true,
            owner: None,
        }
    }
}

/// Result of unpacking: the uncompressed stream's digest (the layer's diff id) and sizes.
#[derive(Debug, Clone)]
pub struct UnpackStats {
    pub diff_id: Digest,
    pub compression: Compression,
    pub tar_bytes: u64,
    pub entries: u64,
}

/// Wraps `input` in the decompressor its first bytes call for.
pub fn decompress<'a, R: Read + Send + 'a>(
    input: R,
) -> io::Result<(Box<dyn Read + Send + 'a>, Compression)> {
    decompress_buffered(BufReader::with_capacity(1 << 20, input))
}

/// [`decompress`] for an input that is already buffered: no second buffer, no extra copy.
pub fn decompress_buffered<'a, R: BufRead + Send + 'a>(
    mut input: R,
) -> io::Result<(Box<dyn Read + Send + 'a>, Compression)> {
    let kind = Compression::detect(input.fill_buf()?);
    let reader: Box<dyn Read + Send + 'a> = match kind {
        Compression::None => Box::new(input),
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(input)),
        Compression::Zstd => Box::new(zstd::stream::read::Decoder::with_buffer(input)?),
    };
    Ok((reader, kind))
}

/// Unpacks the layer tar read from `input` into the existing empty directory `dest`.
pub fn unpack(
    input: impl Read + Send,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let (mut reader, compression) = decompress(input).map_err(UnpackError::Read)?;
    let mut root = LayerRoot::open(dest).map_err(|source| UnpackError::Dest {
        path: dest.display().to_string(),
        err: source,
    })?;
    let (written, hashed) = pipe::hashed(&mut *reader, |stream| {
        write_entries(stream, &mut root, opts)
    });
    let entries = written?;
    root.finish()?;
    let (diff_id, tar_bytes) = hashed.map_err(UnpackError::Read)?;
    Ok(UnpackStats {
        diff_id,
        compression,
        tar_bytes,
        entries,
    })
}

/// [`unpack`] on the calling thread only: decompressing, hashing and writing take turns on
/// each buffer while it is still in the CPU cache. A registry pull unpacks several layers at
/// once, so this spends the least CPU there; one layer alone is faster with [`unpack`].
pub fn unpack_inline(
    input: impl BufRead + Send,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    let (reader, compression) = decompress_buffered(input).map_err(UnpackError::Read)?;
    let mut root = LayerRoot::open(dest).map_err(|source| UnpackError::Dest {
        path: dest.display().to_string(),
        err: source,
    })?;
    let mut stream = crate::digest::HashingReader::new(reader);
    let entries = write_entries(&mut stream, &mut root, opts)?;
    root.finish()?;
    let (diff_id, tar_bytes) = stream.finish().map_err(UnpackError::Read)?;
    Ok(UnpackStats {
        diff_id,
        compression,
        tar_bytes,
        entries,
    })
}

/// Writes every entry of the tar `stream` into `root`; returns how many there were.
fn write_entries(
    stream: impl Read,
    root: &mut LayerRoot,
    opts: &UnpackOptions,
) -> Result<u64, UnpackError> {
    let mut entries = 0u64;
    let mut archive = tar::Archive::new(stream);
    for item in archive.entries().map_err(UnpackError::Read)? {
        let mut e = item.map_err(UnpackError::Read)?;
        entry::write(root, &mut e, opts, None)?;
        entries += 1;
    }
    Ok(entries)
}

/// Unpacks the plain tar `input` into the directory `dest` (an open directory, e.g. one
/// resolved inside a container's root), with the same confinement as a layer: nothing lands
/// outside `dest`. Returns the number of entries.
pub fn unpack_at(
    input: impl Read,
    dest: std::os::fd::OwnedFd,
    opts: &UnpackOptions,
) -> Result<u64, UnpackError> {
    let mut root = LayerRoot::from_fd(dest);
    let entries = write_entries(input, &mut root, opts)?;
    root.finish()?;
    Ok(entries)
}

/// Unpacks the layer file `file`. A plain tar is read in place: entries are parsed from the
/// file, file data is copied by the kernel (copy_file_range), and a second thread hashes the
/// file for the diff id. Compressed layers go through [`unpack`].
pub fn unpack_file(
    file: &std::fs::File,
    dest: &Path,
    opts: &UnpackOptions,
) -> Result<UnpackStats, UnpackError> {
    use std::os::unix::fs::FileExt;
    let mut head = [0u8; 4];
    let n = file.read_at(&mut head, 0).map_err(UnpackError::Read)?;
    if Compression::detect(&head[..n]) != Compression::None {
        return unpack(file, dest, opts);
    }
    let mut root = LayerRoot::open(dest).map_err(|err| UnpackError::Dest {
        path: dest.display().to_string(),
        err,
    })?;
    let (written, hashed) = std::thread::scope(|s| {
        let hasher = s.spawn(|| hash_file(file));
        let written = (|| -> Result<u64, UnpackError> {
            let mut entries = 0u64;
            let mut archive = tar::Archive::new(file);
            for item in archive.entries_with_seek().map_err(UnpackError::Read)? {
                let mut e = item.map_err(UnpackError::Read)?;
                entry::write(&mut root, &mut e, opts, Some(file))?;
                entries += 1;
            }
            Ok(entries)
        })();
        let hashed = hasher
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("layer hashing thread panicked")));
        (written, hashed)
    });
    let entries = written?;
    root.finish()?;
    let (diff_id, tar_bytes) = hashed.map_err(UnpackError::Read)?;
    Ok(UnpackStats {
        diff_id,
        compression: Compression::None,
        tar_bytes,
        entries,
    })
}

/// Digest and length of a whole file, with positioned reads (the file offset is the tar
/// reader's).
fn hash_file(file: &std::fs::File) -> io::Result<(Digest, u64)> {
    use std::os::unix::fs::FileExt;
    let mut hasher = crate::digest::Hasher::default();
    let mut buf = vec![0u8; 1 << 20];
    let mut off = 0u64;
    loop {
        let n = file.read_at(&mut buf, off)?;
        if n == 0 {
            return Ok((hasher.finish(), off));
        }
        hasher.update(&buf[..n]);
        off += n as u64;
    }
}

/// Splits a tar path into clean components: leading `/` and `.` are dropped (as GNU tar and
/// containerd do), `..` is refused.
pub(crate) fn components(raw: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    for c in raw.split(|b| *b == b'/') {
        match c {
            b"" | b"." => {}
            b".." => return Err("path contains '..'".into()),
            c => out.push(c),
        }
    }
    Ok(out)
}
