//! The CNI spec's error object: a code (1-99 from the spec, 100+ hull's own), a message and
//! details, printed as JSON on stdout with a non-zero exit.

use serde::Serialize;

use crate::error::NetError;

/// Incompatible CNI version.
pub const INCOMPATIBLE_VERSION: u32 = 1;
/// Unsupported field in network configuration.
pub const UNSUPPORTED_FIELD: u32 = 2;
/// Container unknown or does not exist.
pub const UNKNOWN_CONTAINER: u32 = 3;
/// Invalid necessary environment variables.
pub const INVALID_ENV: u32 = 4;
/// I/O failure.
pub const IO_FAILURE: u32 = 5;
/// Failed to decode content.
pub const DECODE_FAILURE: u32 = 6;
/// Invalid network config.
pub const INVALID_CONFIG: u32 = 7;
/// hull-net refused or failed (message says why).
pub const HULL_NET: u32 = 100;
/// CHECK found the attachment not as it should be.
pub const CHECK_FAILED: u32 = 101;
/// A delegated IPAM plugin failed.
pub const DELEGATE_FAILED: u32 = 102;

/// An error as the CNI spec prints it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{msg}{}", if details.is_empty() { String::new() } else { format!(": {details}") })]
pub struct CniError {
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    pub code: u32,
    pub msg: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        CniError {
            cni_version: "1.0.0".to_string(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }
}

impl From<NetError> for CniError {
    fn from(e: NetError) -> Self {
        let code = match &e {
            NetError::Netns(crate::netns::NetnsError::Missing(_)) => UNKNOWN_CONTAINER,
            NetError::Network(crate::network::NetworkError::Mismatch { .. })
            | NetError::Network(crate::network::NetworkError::Subnet(_)) => INVALID_CONFIG,
            NetError::Db(_) | NetError::Etc(_) => IO_FAILURE,
            _ => HULL_NET,
        };
        CniError::new(code, e.to_string())
    }
}
