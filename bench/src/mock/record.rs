//! `--record FILE`: one JSON line per HTTP request received.
//!
//! Tests behind the proxy read this file to assert what reached the upstream,
//! or that nothing did. Each line is written with a single `write_all` on an
//! unbuffered append-mode file, so it is visible as soon as the request is
//! being handled. The lock is taken only when recording is on.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use http::request::Parts;
use parking_lot::Mutex;
use serde_json::{json, Value};

/// Appends request records to a file.
#[derive(Debug)]
pub struct Recorder {
    file: Mutex<File>,
}

impl Recorder {
    /// Open (create or append to) the record file.
    pub fn open(path: &Path) -> io::Result<Self> {
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        Ok(Self {
            file: Mutex::new(file),
        })
    }

    /// Record one request. `body` is what was read (`None` when it was refused
    /// for size, in which case `body_len` is the declared length if any).
    pub fn record(&self, parts: &Parts, body: Option<&[u8]>) {
        let line = record_line(parts, body);
        let mut bytes = serde_json::to_vec(&line).unwrap_or_default();
        bytes.push(b'\n');
        let mut file = self.file.lock();
        if let Err(err) = file.write_all(&bytes).and_then(|()| file.flush()) {
            eprintln!("demo-upstream: cannot write record file: {err}");
        }
    }
}

/// The JSON object recorded for one request.
pub fn record_line(parts: &Parts, body: Option<&[u8]>) -> Value {
    let headers: Vec<Value> = parts
        .headers
        .iter()
        .map(|(name, value)| json!([name.as_str(), String::from_utf8_lossy(value.as_bytes())]))
        .collect();
    let ts_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let path = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str())
        .unwrap_or("/");
    let mut line = json!({
        "ts_ms": ts_ms,
        "method": parts.method.as_str(),
        "path": path,
        "headers": headers,
    });
    match body {
        Some(body) => {
            line["body"] = Value::String(String::from_utf8_lossy(body).into_owned());
            line["body_len"] = json!(body.len());
        }
        None => {
            line["body"] = Value::String(String::new());
            line["body_len"] = parts
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .map_or(Value::Null, |n| json!(n));
            line["body_refused"] = Value::Bool(true);
        }
    }
    line
}
