//! RTMP: the protocol session (sans-IO) and the TCP server around it.

pub mod guard;
pub mod server;
pub mod session;
