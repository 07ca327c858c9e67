//! The admin API under `/api/v1/` (described by `docs/admin-api.json`, served at
//! `/api/v1/openapi.json`): streams, kicking a publisher, reloading the config. Every route but
//! the description needs `Authorization: Bearer {admin.token}`; without a configured token the
//! API answers 403.

use super::{json, AdminState};
use crate::reload::ReloadError;
use bytes::Bytes;
use ferrocast_packager::stream::status::StreamStatus;
use ferrocast_packager::stream::Stream;
use http::{header, Method, StatusCode};
use http_body_util::Full;
use hyper::Response;
use serde_json::{json, Value};
use std::time::Instant;

/// The OpenAPI description of this API.
pub const OPENAPI: &str = include_str!("../../docs/admin-api.json");

/// Every route: method and path template, as the OpenAPI description lists them.
pub const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/openapi.json"),
    ("GET", "/api/v1/server"),
    ("GET", "/api/v1/streams"),
    ("GET", "/api/v1/streams/{stream}"),
    ("POST", "/api/v1/streams/{stream}/kick"),
    ("POST", "/api/v1/reload"),
];

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json(status, &json!({ "error": message }))
}

/// Handles a request whose path starts with `/api/v1/`.
pub async fn handle(
    state: &AdminState,
    method: &Method,
    path: &str,
    headers: &http::HeaderMap,
) -> Response<Full<Bytes>> {
    let rest = path.strip_prefix("/api/v1/").unwrap_or("");
    if rest == "openapi.json" {
        return match *method {
            Method::GET | Method::HEAD => super::text(StatusCode::OK, OPENAPI, "application/json"),
            _ => not_allowed("GET"),
        };
    }
    let Some(token) = state.live.admin_token() else {
        return error(
            StatusCode::FORBIDDEN,
            "the admin API is off: set admin.token in the config",
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(ferrocast_auth::playback::bearer_token);
    if !presented.is_some_and(|p| token.matches(p.as_bytes())) {
        let mut r = error(StatusCode::UNAUTHORIZED, "a valid bearer token is required");
        r.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            http::HeaderValue::from_static("Bearer realm=\"ferrocast admin\""),
        );
        return r;
    }
    let segments: Vec<&str> = rest.split('/').collect();
    match (segments.as_slice(), method) {
        (["server"], &Method::GET) => server(state),
        (["streams"], &Method::GET) => {
            let streams: Vec<Value> = match &state.store {
                Some(_) => streams(state)
                    .into_iter()
                    .map(|s| stream_json(state, &s))
                    .collect(),
                // an edge knows streams by their viewers
                None => state
                    .viewers
                    .counts(Instant::now())
                    .into_iter()
                    .map(|(name, n)| json!({ "name": name, "viewers": n }))
                    .collect(),
            };
            json(StatusCode::OK, &json!({ "streams": streams }))
        }
        (["streams", name], &Method::GET) => match find(state, name) {
            Some(s) => json(StatusCode::OK, &stream_json(state, &s.status())),
            None => viewers_only(state, name),
        },
        (["streams", name, "kick"], &Method::POST) => match find(state, name) {
            Some(s) if s.kick() => {
                tracing::info!(stream = %name, "publisher kicked through the admin API");
                json(StatusCode::OK, &json!({ "stream": name, "kicked": true }))
            }
            Some(_) => error(StatusCode::CONFLICT, "the stream has no publisher"),
            None => error(StatusCode::NOT_FOUND, "no such stream"),
        },
        (["reload"], &Method::POST) => match state.live.reload().await {
            Ok(report) => json(StatusCode::OK, &report),
            Err(e) => {
                tracing::warn!(error = %e, "config reload refused; the running config stays");
                let status = match e {
                    ReloadError::NoFile => StatusCode::CONFLICT,
                    ReloadError::Unreadable(_) => StatusCode::INTERNAL_SERVER_ERROR,
                    ReloadError::Invalid(_) => StatusCode::BAD_REQUEST,
                };
                error(status, &e.to_string())
            }
        },
        (["server"] | ["streams"] | ["streams", _], _) => not_allowed("GET"),
        (["streams", _, "kick"] | ["reload"], _) => not_allowed("POST"),
        _ => error(StatusCode::NOT_FOUND, "no such API route"),
    }
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = error(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
    r.headers_mut()
        .insert(header::ALLOW, http::HeaderValue::from_static(allow));
    r
}

fn find(state: &AdminState, name: &str) -> Option<std::sync::Arc<Stream>> {
    state.store.as_ref()?.get(name)
}

fn streams(state: &AdminState) -> Vec<StreamStatus> {
    state
        .store
        .iter()
        .flat_map(|s| s.list())
        .map(|s| s.status())
        .collect()
}

fn server(state: &AdminState) -> Response<Full<Bytes>> {
    let streams = state.store.as_ref().map(|s| s.len());
    json(
        StatusCode::OK,
        &json!({
            "version": env!("CARGO_PKG_VERSION"),
            "role": state.role,
            "uptime_seconds": state.started.elapsed().as_secs_f64(),
            "streams": streams,
            "viewers": state.viewers.counts(Instant::now()).iter().map(|(_, n)| n).sum::<usize>(),
        }),
    )
}

/// An edge knows a stream only by its viewers.
fn viewers_only(state: &AdminState, name: &str) -> Response<Full<Bytes>> {
    let n = state.viewers.count(name, Instant::now());
    if state.store.is_some() || n == 0 {
        return error(StatusCode::NOT_FOUND, "no such stream");
    }
    json(StatusCode::OK, &json!({ "name": name, "viewers": n }))
}

fn stream_json(state: &AdminState, s: &StreamStatus) -> Value {
    let track = |t: &Option<ferrocast_packager::stream::status::TrackStatus>| {
        t.as_ref().map(|t| {
            let mut v = json!({ "codec": t.codec, "bitrate": t.bitrate });
            if let Some((w, h)) = t.resolution {
                v["width"] = w.into();
                v["height"] = h.into();
            }
            if let Some(fps) = t.frame_rate {
                v["frame_rate"] = ((fps * 1000.0).round() / 1000.0).into();
            }
            if let Some((rate, ch)) = t.audio {
                v["sample_rate"] = rate.into();
                v["channels"] = ch.into();
            }
            v
        })
    };
    json!({
        "name": s.name,
        "state": s.state.as_str(),
        "uptime_seconds": round3(s.uptime.as_secs_f64()),
        "created_unix_ms": s.created_ms,
        "publisher": s.publisher.map(|(protocol, addr, connected, since)| json!({
            "protocol": protocol,
            "address": addr.to_string(),
            "connected_seconds": round3(connected.as_secs_f64()),
            "since_unix_ms": since,
        })),
        "video": track(&s.video),
        "audio": track(&s.audio),
        "bitrate": s.bitrate(),
        "viewers": state.viewers.count(&s.name, Instant::now()),
        "target_duration": s.timing.map(|t| t.0),
        "part_target_ms": s.timing.map(|t| t.1),
        "last_part": s.last_part.map(|(msn, part)| json!({ "msn": msn, "part": part })),
        "init_generation": s.init_generation,
        "playlist": format!("/live/{}/index.m3u8", s.name),
    })
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
