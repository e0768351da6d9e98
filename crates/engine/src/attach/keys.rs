//! Detach keys: the key sequence that ends an attach session and leaves the container running
//! (docker's `--detach-keys`, default ctrl-p,ctrl-q), spotted in the client's input.

use crate::error::EngineError;

/// docker's default.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// The sequence and how much of it the input has matched so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DetachKeys {
    seq: Vec<u8>,
    matched: usize,
}

impl Default for DetachKeys {
    fn default() -> DetachKeys {
        DetachKeys {
            seq: vec![0x10, 0x11],
            matched: 0,
        }
    }
}

impl DetachKeys {
    /// docker's format: keys separated by commas, each one character or `ctrl-X` with X one of
    /// a-z @ [ \ ] ^ _. An empty text is the default, as docker's.
    pub fn parse(text: &str) -> Result<DetachKeys, EngineError> {
        if text.is_empty() {
            return Ok(DetachKeys::default());
        }
        let bad =
            |why: String| EngineError::Invalid(format!("invalid --detach-keys {text:?}: {why}"));
        let mut seq = Vec::new();
        for key in text.split(',') {
            let byte = match key.strip_prefix("ctrl-") {
                Some(rest) if rest.len() == 1 => {
                    let c = rest.as_bytes()[0].to_ascii_lowercase();
                    match c {
                        b'a'..=b'z' => c - b'a' + 1,
                        b'@' => 0,
                        b'[' | b'\\' | b']' | b'^' | b'_' => c - b'@',
                        _ => return Err(bad(format!("unknown character {rest:?}"))),
                    }
                }
                _ if key.len() == 1 && key.is_ascii() => key.as_bytes()[0],
                _ => return Err(bad(format!("unknown key {key:?}"))),
            };
            seq.push(byte);
        }
        Ok(DetachKeys { seq, matched: 0 })
    }

    /// Takes `input`: what goes on to the container, and whether the sequence is complete (what
    /// follows it is dropped). A partial match is held back until the next key shows whether
    /// it is the sequence or input, as docker holds a ^P.
    pub fn feed(&mut self, input: &[u8]) -> (Vec<u8>, bool) {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if self.seq.get(self.matched) != Some(&b) {
                out.extend_from_slice(&self.seq[..self.matched]);
                self.matched = 0;
            }
            if self.seq.get(self.matched) == Some(&b) {
                self.matched += 1;
                if self.matched == self.seq.len() {
                    self.matched = 0;
                    return (out, true);
                }
            } else {
                out.push(b);
            }
        }
        (out, false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_keys() {
        assert_eq!(DetachKeys::parse(DEFAULT).unwrap(), DetachKeys::default());
        assert_eq!(DetachKeys::parse("").unwrap(), DetachKeys::default());
        assert_eq!(DetachKeys::parse("ctrl-a,x").unwrap().seq, vec![1, b'x']);
        assert_eq!(
            DetachKeys::parse("ctrl-@,ctrl-[,ctrl-_").unwrap().seq,
            vec![0, 27, 31]
        );
        assert!(DetachKeys::parse("ctrl-1").is_err());
        assert!(DetachKeys::parse("alt-x").is_err());
        assert!(DetachKeys::parse("a,,b").is_err());
    }

    #[test]
    fn spots_the_sequence_across_reads() {
        let mut k = DetachKeys::default();
        assert_eq!(k.feed(b"ls\r"), (b"ls\r".to_vec(), false));
        assert_eq!(k.feed(b"a\x10"), (b"a".to_vec(), false));
        assert_eq!(k.feed(b"\x11rest"), (Vec::new(), true));
        // A ^P not followed by ^Q goes on, with what followed it.
        assert_eq!(k.feed(b"\x10x"), (b"\x10x".to_vec(), false));
        assert_eq!(k.feed(b"\x10\x10\x11"), (b"\x10".to_vec(), true));
    }
}
