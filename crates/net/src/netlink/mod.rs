//! A small synchronous rtnetlink client: one NETLINK_ROUTE socket, bound to the network
//! namespace it was opened in, sending one request at a time and reading its ACK or dump.
//!
//! Synchronous on purpose: each attach is a handful of requests, and a blocking socket avoids
//! an async runtime (rtnetlink needs tokio) in every hull process and in `hull-cni`.

mod addr;
mod link;
mod route;
mod tc;

use std::io;

use netlink_packet_core::{
    NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_ACK, NLM_F_DUMP, NLM_F_REQUEST,
};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_sys::{protocols::NETLINK_ROUTE, Socket, SocketAddr};

pub use addr::AddrInfo;
pub use link::LinkInfoBrief;
pub use route::RouteInfo;

/// Errors of the netlink layer; `op` names what was being done, as `ip` would word it.
#[derive(Debug, thiserror::Error)]
pub enum NetlinkError {
    #[error("cannot open a netlink socket: {0}")]
    Socket(io::Error),
    #[error("{op}: {source}")]
    Kernel { op: String, source: io::Error },
    #[error("{op}: undecodable netlink reply: {reason}")]
    Decode { op: String, reason: String },
    #[error("no network interface named {0:?}")]
    NoSuchLink(String),
}

impl NetlinkError {
    /// The errno the kernel answered with, if this is a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

/// A NETLINK_ROUTE socket in the namespace where it was opened.
#[derive(Debug)]
pub struct Netlink {
    socket: Socket,
    seq: u32,
}

impl Netlink {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> Result<Self, NetlinkError> {
        let mut socket = Socket::new(NETLINK_ROUTE).map_err(NetlinkError::Socket)?;
        socket.bind_auto().map_err(NetlinkError::Socket)?;
        socket
            .connect(&SocketAddr::new(0, 0))
            .map_err(NetlinkError::Socket)?;
        // Extended ACKs give the kernel's reason text; failure to enable them is harmless.
        let _ = socket.set_ext_ack(true);
        Ok(Netlink { socket, seq: 0 })
    }

    /// Sends a request that changes something and waits for its ACK.
    fn change(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &dyn Fn() -> String,
    ) -> Result<(), NetlinkError> {
        self.exchange(msg, flags | NLM_F_REQUEST | NLM_F_ACK, op)
            .map(|_| ())
    }

    /// Sends a dump request and returns every message of the reply.
    fn dump(
        &mut self,
        msg: RouteNetlinkMessage,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.exchange(msg, NLM_F_REQUEST | NLM_F_DUMP, op)
    }

    fn exchange(
        &mut self,
        msg: RouteNetlinkMessage,
        flags: u16,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        self.seq = self.seq.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags;
        header.sequence_number = self.seq;
        let mut req = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(msg));
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.socket
            .send(&buf, 0)
            .map_err(|source| NetlinkError::Kernel { op: op(), source })?;
        self.read_reply(op)
    }

    fn read_reply(
        &mut self,
        op: &dyn Fn() -> String,
    ) -> Result<Vec<RouteNetlinkMessage>, NetlinkError> {
        let mut out = Vec::new();
        loop {
            let (data, _) = self
                .socket
                .recv_from_full()
                .map_err(|source| NetlinkError::Kernel { op: op(), source })?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| NetlinkError::Decode {
                        op: op(),
                        reason: e.to_string(),
                    })?;
                let len = usize::try_from(msg.header.length).unwrap_or(usize::MAX);
                if len == 0 {
                    break;
                }
                offset += (len + 3) & !3;
                if msg.header.sequence_number != self.seq {
                    continue;
                }
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(out),
                    NetlinkPayload::Error(e) if e.code.is_none() => return Ok(out),
                    NetlinkPayload::Error(e) => {
                        return Err(NetlinkError::Kernel {
                            op: op(),
                            source: e.to_io(),
                        })
                    }
                    NetlinkPayload::InnerMessage(inner) => out.push(inner),
                    _ => {}
                }
            }
        }
    }
}
