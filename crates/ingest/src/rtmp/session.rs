//! The RTMP protocol session (RTMP 1.0 §5.2 handshake, §5.3 chunk stream, §7.2 commands)
//! behind our own trait, so the implementation (today `rml_rtmp`) can be replaced without
//! touching the server. Sans-IO: bytes in, bytes out + events.

use super::guard::{ChunkGuard, ChunkLimits, GuardError};
use bytes::Bytes;
use rml_rtmp::handshake::{Handshake, HandshakeProcessResult, PeerType};
use rml_rtmp::sessions::{
    ServerSession, ServerSessionConfig, ServerSessionEvent, ServerSessionResult,
};

/// What the session tells the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RtmpEvent {
    /// `connect(app)`: answer with [`RtmpSession::accept`] or [`RtmpSession::reject`].
    Connect {
        /// Request to answer.
        request_id: u32,
        /// Application name.
        app: String,
    },
    /// `publish(key)`: answer with accept or reject.
    Publish {
        /// Request to answer.
        request_id: u32,
        /// Application name.
        app: String,
        /// Stream key (may carry a `?query`).
        key: String,
    },
    /// A video message (FLV video tag body).
    Video {
        /// RTMP timestamp, ms.
        timestamp: u32,
        /// Message body.
        data: Bytes,
    },
    /// An audio message (FLV audio tag body).
    Audio {
        /// RTMP timestamp, ms.
        timestamp: u32,
        /// Message body.
        data: Bytes,
    },
    /// The publisher stopped publishing (`FCUnpublish`/`deleteStream`).
    PublishFinished,
    /// A play request: this server does not serve RTMP playback.
    Play {
        /// Request to answer (reject).
        request_id: u32,
    },
}

/// An RTMP protocol error: the connection must be closed.
#[derive(Debug, thiserror::Error)]
pub enum RtmpError {
    /// The handshake failed.
    #[error("handshake: {0}")]
    Handshake(String),
    /// The chunk stream or a command could not be processed.
    #[error("session: {0}")]
    Session(String),
    /// The chunk stream broke a limit or would be misread (see [`ChunkGuard`]).
    #[error("refused: {0}")]
    Refused(#[from] GuardError),
}

/// A server-side RTMP session.
pub trait RtmpSession: Send {
    /// Feeds received bytes; appends bytes to send to `out` and events to `events`.
    fn handle_input(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<RtmpEvent>,
    ) -> Result<(), RtmpError>;
    /// Accepts a connect or publish request.
    fn accept(
        &mut self,
        request_id: u32,
        out: &mut Vec<u8>,
        events: &mut Vec<RtmpEvent>,
    ) -> Result<(), RtmpError>;
    /// Rejects a request with an RTMP status code and description (sent as `_error`).
    fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), RtmpError>;
}

enum State {
    /// Nothing received yet (no handshake state held).
    Idle,
    Handshake(Box<Handshake>),
    Session(Box<ServerSession>),
}

/// [`RtmpSession`] implemented with `rml_rtmp` (handshake, chunking, AMF0 command flow),
/// behind a [`ChunkGuard`] that refuses what `rml_rtmp` would mishandle.
pub struct RmlSession {
    state: State,
    guard: ChunkGuard,
}

impl Default for RmlSession {
    fn default() -> Self {
        Self::new(ChunkLimits::default())
    }
}

impl RmlSession {
    /// A session waiting for C0/C1, refusing chunk streams beyond `limits`.
    pub fn new(limits: ChunkLimits) -> Self {
        Self {
            state: State::Idle,
            guard: ChunkGuard::new(limits),
        }
    }

    fn process(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<RtmpEvent>,
    ) -> Result<(), RtmpError> {
        match &mut self.state {
            State::Idle => {
                self.state = State::Handshake(Box::new(Handshake::new(PeerType::Server)));
                self.process(data, out, events)
            }
            State::Handshake(h) => {
                match h
                    .process_bytes(data)
                    .map_err(|e| RtmpError::Handshake(format!("{e:?}")))?
                {
                    HandshakeProcessResult::InProgress { response_bytes } => {
                        out.extend_from_slice(&response_bytes);
                        Ok(())
                    }
                    HandshakeProcessResult::Completed {
                        response_bytes,
                        remaining_bytes,
                    } => {
                        out.extend_from_slice(&response_bytes);
                        let (session, initial) = ServerSession::new(ServerSessionConfig::new())
                            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
                        self.state = State::Session(Box::new(session));
                        Self::results(initial, out, events);
                        if remaining_bytes.is_empty() {
                            Ok(())
                        } else {
                            self.process(&remaining_bytes, out, events)
                        }
                    }
                }
            }
            State::Session(s) => {
                let r = s
                    .handle_input(data)
                    .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
                Self::results(r, out, events);
                Ok(())
            }
        }
    }

    fn results(results: Vec<ServerSessionResult>, out: &mut Vec<u8>, events: &mut Vec<RtmpEvent>) {
        for r in results {
            match r {
                ServerSessionResult::OutboundResponse(p) => out.extend_from_slice(&p.bytes),
                ServerSessionResult::RaisedEvent(e) => match e {
                    ServerSessionEvent::ConnectionRequested {
                        request_id,
                        app_name,
                    } => events.push(RtmpEvent::Connect {
                        request_id,
                        app: app_name,
                    }),
                    ServerSessionEvent::PublishStreamRequested {
                        request_id,
                        app_name,
                        stream_key,
                        ..
                    } => events.push(RtmpEvent::Publish {
                        request_id,
                        app: app_name,
                        key: stream_key,
                    }),
                    ServerSessionEvent::VideoDataReceived {
                        data, timestamp, ..
                    } => events.push(RtmpEvent::Video {
                        timestamp: timestamp.value,
                        data,
                    }),
                    ServerSessionEvent::AudioDataReceived {
                        data, timestamp, ..
                    } => events.push(RtmpEvent::Audio {
                        timestamp: timestamp.value,
                        data,
                    }),
                    ServerSessionEvent::PublishStreamFinished { .. } => {
                        events.push(RtmpEvent::PublishFinished)
                    }
                    ServerSessionEvent::PlayStreamRequested { request_id, .. } => {
                        events.push(RtmpEvent::Play { request_id })
                    }
                    _ => {}
                },
                ServerSessionResult::UnhandleableMessageReceived(_) => {}
            }
        }
    }
}

impl RtmpSession for RmlSession {
    fn handle_input(
        &mut self,
        data: &[u8],
        out: &mut Vec<u8>,
        events: &mut Vec<RtmpEvent>,
    ) -> Result<(), RtmpError> {
        // the guard sees every byte first; what it refuses never reaches rml_rtmp
        self.guard.check(data)?;
        self.process(data, out, events)
    }

    fn accept(
        &mut self,
        request_id: u32,
        out: &mut Vec<u8>,
        events: &mut Vec<RtmpEvent>,
    ) -> Result<(), RtmpError> {
        let State::Session(s) = &mut self.state else {
            return Err(RtmpError::Session("accept before handshake".into()));
        };
        let r = s
            .accept_request(request_id)
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        Self::results(r, out, events);
        Ok(())
    }

    fn reject(
        &mut self,
        request_id: u32,
        code: &str,
        description: &str,
        out: &mut Vec<u8>,
    ) -> Result<(), RtmpError> {
        let State::Session(s) = &mut self.state else {
            return Err(RtmpError::Session("reject before handshake".into()));
        };
        let r = s
            .reject_request(request_id, code, description)
            .map_err(|e| RtmpError::Session(format!("{e:?}")))?;
        Self::results(r, out, &mut Vec::new());
        Ok(())
    }
}
