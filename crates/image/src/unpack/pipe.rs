//! Reading, decompressing and hashing a layer stream on a second thread while the first one
//! writes files: the diff id costs no time on the writing path.

use std::io::{self, Read};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender};

use crate::digest::{Digest, Hasher};

const CHUNK: usize = 1 << 20;

/// The consuming end: reads the chunks the producer thread sent.
pub struct ChunkReader {
    rx: Receiver<io::Result<Vec<u8>>>,
    recycle: SyncSender<Vec<u8>>,
    cur: Vec<u8>,
    pos: usize,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.pos == self.cur.len() {
            if self.done {
                return Ok(0);
            }
            match self.rx.recv() {
                Ok(Ok(chunk)) => {
                    let old = std::mem::replace(&mut self.cur, chunk);
                    let _ = self.recycle.try_send(old);
                    self.pos = 0;
                }
                Ok(Err(e)) => {
                    self.done = true;
                    return Err(e);
                }
                Err(_) => {
                    self.done = true;
                    return Ok(0);
                }
            }
        }
        let n = buf.len().min(self.cur.len() - self.pos);
        buf[..n].copy_from_slice(&self.cur[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

/// Runs `consume` on the stream of `input` while a scoped thread reads and hashes it.
/// Returns what `consume` returned, and the digest and length of the whole stream.
pub fn hashed<T>(
    input: &mut (dyn Read + Send),
    consume: impl FnOnce(&mut ChunkReader) -> T,
) -> (T, io::Result<(Digest, u64)>) {
    let (tx, rx) = sync_channel::<io::Result<Vec<u8>>>(4);
    let (recycle, spare) = sync_channel::<Vec<u8>>(8);
    std::thread::scope(|s| {
        let producer = s.spawn(move || produce(input, &tx, &spare));
        let mut reader = ChunkReader {
            rx,
            recycle,
            cur: Vec::new(),
            pos: 0,
            done: false,
        };
        let out = consume(&mut reader);
        // Drain what the consumer left (a tar's trailing padding counts in its digest);
        // on the error path this stops at once because the consumer is gone.
        let _ = io::copy(&mut reader, &mut io::sink());
        drop(reader);
        let digest = producer
            .join()
            .unwrap_or_else(|_| Err(io::Error::other("layer reader thread panicked")));
        (out, digest)
    })
}

fn produce(
    input: &mut (dyn Read + Send),
    tx: &SyncSender<io::Result<Vec<u8>>>,
    spare: &Receiver<Vec<u8>>,
) -> io::Result<(Digest, u64)> {
    let mut hasher = Hasher::default();
    let mut total = 0u64;
    loop {
        let mut buf = spare.try_recv().unwrap_or_default();
        buf.resize(CHUNK, 0);
        let mut filled = 0;
        while filled < CHUNK {
            match input.read(&mut buf[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    let msg = e.to_string();
                    let _ = tx.send(Err(e));
                    return Err(io::Error::other(msg));
                }
            }
        }
        buf.truncate(filled);
        hasher.update(&buf);
        total += filled as u64;
        if filled == 0 {
            return Ok((hasher.finish(), total));
        }
        if tx.send(Ok(buf)).is_err() {
            return Err(io::Error::other("layer consumer stopped"));
        }
    }
}
