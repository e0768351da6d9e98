//! Blobs by digest under `blobs/sha256/`: written to a temp file, verified, then renamed.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use crate::digest::{Digest, HashingWriter};

/// Errors from the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    #[error("blob {expected}: digest mismatch (content is {actual}); nothing was stored")]
    Mismatch { expected: Digest, actual: Digest },
    #[error("blob {digest}: expected {expected} bytes, got {actual}; nothing was stored")]
    Size {
        digest: Digest,
        expected: u64,
        actual: u64,
    },
    #[error("blob {digest}: {err}")]
    Io { digest: String, err: io::Error },
    #[error("blob {0} is not in the store")]
    Missing(Digest),
}

#[derive(Debug, Clone)]
pub struct BlobStore {
    dir: PathBuf,
    tmp: PathBuf,
}

impl BlobStore {
    pub fn new(dir: PathBuf, tmp: PathBuf) -> Self {
        Self { dir, tmp }
    }

    pub fn path(&self, d: &Digest) -> PathBuf {
        self.dir.join(d.hex())
    }

    pub fn exists(&self, d: &Digest) -> bool {
        self.path(d).is_file()
    }

    pub fn open(&self, d: &Digest) -> Result<File, BlobError> {
        File::open(self.path(d)).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound => BlobError::Missing(d.clone()),
            _ => BlobError::Io {
                digest: d.to_string(),
                err: e,
            },
        })
    }

    pub fn read(&self, d: &Digest) -> Result<Vec<u8>, BlobError> {
        let mut v = Vec::new();
        self.open(d)?
            .read_to_end(&mut v)
            .map_err(|source| BlobError::Io {
                digest: d.to_string(),
                err: source,
            })?;
        Ok(v)
    }

    /// A temp file that [`BlobStore::commit`] turns into a blob.
    pub fn temp(&self) -> io::Result<TempBlob> {
        let path = super::temp_name(&self.tmp, "blob");
        let file = File::create_new(&path)?;
        Ok(TempBlob {
            path,
            writer: Some(HashingWriter::new(file)),
        })
    }

    /// Copies `r` into the store; `expected` (digest, size) is verified before the rename.
    pub fn put(
        &self,
        r: &mut (impl Read + ?Sized),
        expected: Option<(&Digest, Option<u64>)>,
    ) -> Result<(Digest, u64), BlobError> {
        let label = expected
            .map(|e| e.0.to_string())
            .unwrap_or_else(|| "(new)".into());
        let io_err = |source| BlobError::Io {
            digest: label.clone(),
            err: source,
        };
        let mut t = self.temp().map_err(io_err)?;
        io::copy(r, &mut t).map_err(io_err)?;
        self.commit(t, expected)
    }

    pub fn put_bytes(&self, data: &[u8], expected: Option<&Digest>) -> Result<Digest, BlobError> {
        let d = Digest::of(data);
        if let Some(e) = expected {
            if *e != d {
                return Err(BlobError::Mismatch {
                    expected: e.clone(),
                    actual: d,
                });
            }
        }
        if !self.exists(&d) {
            self.put(&mut &data[..], Some((&d, None)))?;
        }
        Ok(d)
    }

    /// Verifies and renames a temp blob into place (a no-op rename if it is already there).
    pub fn commit(
        &self,
        t: TempBlob,
        expected: Option<(&Digest, Option<u64>)>,
    ) -> Result<(Digest, u64), BlobError> {
        let mut t = t;
        let path = t.path.clone();
        let writer = t.writer.take().ok_or_else(|| BlobError::Io {
            digest: "(new)".into(),
            err: io::Error::other("temp blob already committed"),
        })?;
        let (file, actual, size) = writer.finish();
        let fail = |e: BlobError| {
            let _ = std::fs::remove_file(&path);
            e
        };
        if let Some((d, want)) = expected {
            if *d != actual {
                return Err(fail(BlobError::Mismatch {
                    expected: d.clone(),
                    actual,
                }));
            }
            if let Some(want) = want {
                if want != size {
                    return Err(fail(BlobError::Size {
                        digest: d.clone(),
                        expected: want,
                        actual: size,
                    }));
                }
            }
        }
        let io_err = |source| BlobError::Io {
            digest: actual.to_string(),
            err: source,
        };
        // No fsync here: the store flushes once (syncfs) before it records what refers to
        // this blob, and an unrecorded blob is re-verified before it is trusted.
        drop(file);
        std::fs::rename(&path, self.path(&actual)).map_err(|e| fail(io_err(e)))?;
        Ok((actual, size))
    }

    /// Whether the blob file holds exactly the content its name says (removing it if not).
    pub fn verify(&self, d: &Digest) -> bool {
        let Ok(f) = File::open(self.path(d)) else {
            return false;
        };
        let mut r = crate::digest::HashingReader::new(f);
        let ok =
            io::copy(&mut r, &mut io::sink()).is_ok() && r.finish().is_ok_and(|(got, _)| got == *d);
        if !ok {
            let _ = self.remove(d);
        }
        ok
    }

    pub fn remove(&self, d: &Digest) -> io::Result<()> {
        match std::fs::remove_file(self.path(d)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Every blob file present, by digest.
    pub fn list(&self) -> io::Result<Vec<Digest>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir)? {
            let name = format!("sha256:{}", e?.file_name().to_string_lossy());
            if let Ok(d) = name.parse() {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// A blob being written; removed on drop unless committed.
#[derive(Debug)]
pub struct TempBlob {
    path: PathBuf,
    writer: Option<HashingWriter<File>>,
}

fn closed() -> io::Error {
    io::Error::other("temp blob already committed")
}

impl TempBlob {
    /// Starts the writeback of what was written so far (see [`crate::sys::start_writeback`]);
    /// only a hint, so a filesystem that refuses it loses nothing.
    pub fn start_writeback(&self) {
        if let Some(w) = &self.writer {
            let _ = crate::sys::start_writeback(w.get_ref());
        }
    }
}

impl Write for TempBlob {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.writer.as_mut().ok_or_else(closed)?.write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.writer.as_mut().ok_or_else(closed)?.flush()
    }
}

impl Drop for TempBlob {
    fn drop(&mut self) {
        // After a commit the path was renamed away and this finds nothing.
        let _ = std::fs::remove_file(&self.path);
    }
}
