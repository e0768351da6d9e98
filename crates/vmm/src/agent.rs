//! The host end of the channel to hull-guest: a virtio-console port carrying hull-vmproto
//! frames. What the guest writes is decoded on the vCPU thread (`FrameSink`) and handed over a
//! channel, so a slow reader of the guest's output never holds a vCPU inside a device; what the
//! host sends waits in the port's inbox until the guest has the port open.

use std::io::{self, Write};
use std::sync::mpsc::{channel, Receiver, Sender};

use hull_vmproto::{Decoder, Message, ProtoError};

use crate::devices::virtio::input::PortInput;

/// What arrives from the guest.
// Each event is moved through a channel once; boxing every message to shrink the rare error
// would cost an allocation per frame.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AgentEvent {
    Message(Message),
    /// The stream broke (the guest wrote something that is not a frame); nothing follows.
    Broken(ProtoError),
}

/// The port's output: bytes in, messages out.
#[derive(Debug)]
pub struct FrameSink {
    decoder: Decoder,
    tx: Sender<AgentEvent>,
    broken: bool,
}

impl FrameSink {
    pub fn new() -> (Self, Receiver<AgentEvent>) {
        let (tx, rx) = channel();
        let sink = Self {
            decoder: Decoder::default(),
            tx,
            broken: false,
        };
        (sink, rx)
    }
}

impl Write for FrameSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.broken {
            return Ok(buf.len());
        }
        self.decoder.push(buf);
        loop {
            // A receiver that went away no longer cares; the guest's bytes are dropped.
            match self.decoder.next() {
                Ok(Some(m)) => {
                    let _ = self.tx.send(AgentEvent::Message(m));
                }
                Ok(None) => break,
                Err(e) => {
                    self.broken = true;
                    let _ = self.tx.send(AgentEvent::Broken(e));
                    break;
                }
            }
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Sends messages to the guest's agent; clone it for each thread that needs to.
#[derive(Debug, Clone)]
pub struct AgentSender(PortInput);

impl AgentSender {
    pub fn send(&self, m: &Message) {
        self.0.send(&m.encode());
    }
}

/// The host end of the channel: a sender and the guest's events, which end (the receiver
/// disconnects) when the VM is dropped.
#[derive(Debug)]
pub struct Agent {
    pub sender: AgentSender,
    pub events: Receiver<AgentEvent>,
}

impl Agent {
    pub(crate) fn new(input: PortInput, events: Receiver<AgentEvent>) -> Self {
        Self {
            sender: AgentSender(input),
            events,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hull_vmproto::ExitStatus;

    #[test]
    fn frames_split_across_writes_arrive_whole_and_garbage_breaks_the_stream() {
        let (mut sink, rx) = FrameSink::new();
        let a = Message::Stdout {
            id: 0,
            data: b"out".to_vec(),
        }
        .encode();
        let b = Message::Exit {
            id: 0,
            status: ExitStatus::Code(3),
        }
        .encode();
        let mut stream = a.clone();
        stream.extend_from_slice(&b);
        let (x, y) = stream.split_at(a.len() + 2);
        sink.write_all(x).unwrap();
        sink.write_all(y).unwrap();
        let got: Vec<AgentEvent> = rx.try_iter().collect();
        assert_eq!(
            got,
            vec![
                AgentEvent::Message(Message::Stdout {
                    id: 0,
                    data: b"out".to_vec()
                }),
                AgentEvent::Message(Message::Exit {
                    id: 0,
                    status: ExitStatus::Code(3)
                }),
            ]
        );
        sink.write_all(&[1, 0, 0, 0, 0]).unwrap();
        sink.write_all(&a).unwrap();
        assert_eq!(
            rx.try_iter().collect::<Vec<_>>(),
            vec![AgentEvent::Broken(ProtoError::Short)]
        );
    }
}
