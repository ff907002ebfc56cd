//! What happened to every request, in two forms: one structured log line per request (request
//! id, method, path, status, latency, subject) through `tracing`, and the request journal the
//! test-control API lists.
//!
//! dropshot logs through `slog` and ends every request, whatever answered it (an operation,
//! an extractor error, the router), with a "request completed" record carrying the request id,
//! method, URI, status and latency. [`RequestLog`] is the slog drain that turns those records
//! into journal entries and log lines. Operations add the caller with [`note_subject`]; request
//! bodies are never seen here, so no password or token can reach the log or the journal.

use std::collections::{HashMap, VecDeque};
use std::fmt::Arguments;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use slog::{Drain, Key, OwnedKVList, Record, KV};

use crate::clock::Clock;

/// How many requests the journal keeps (the oldest go first).
pub const JOURNAL_CAPACITY: usize = 1000;

const COMPLETED: &str = "request completed";
const SUBJECT: &str = "caller";

#[derive(Debug, Clone)]
pub struct Entry {
    pub time: DateTime<Utc>,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub latency_ms: f64,
    pub subject: Option<String>,
}

#[derive(Debug, Default)]
pub struct Journal {
    entries: Mutex<VecDeque<Entry>>,
    /// Subjects of requests still in flight, by request id.
    subjects: Mutex<HashMap<String, String>>,
}

impl Journal {
    fn push(&self, entry: Entry) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() == JOURNAL_CAPACITY {
            entries.pop_front();
        }
        entries.push_back(entry);
    }

    /// The entries that `keep` selects, newest first.
    pub fn entries(&self, keep: impl Fn(&Entry) -> bool) -> Vec<Entry> {
        let entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.iter().rev().filter(|e| keep(e)).cloned().collect()
    }

    pub fn clear(&self) {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

/// Records who is calling, for the request's journal entry and log line.
pub fn note_subject(log: &slog::Logger, subject: &uuid::Uuid) {
    slog::debug!(log, "{}", SUBJECT; "subject" => %subject);
}

/// The log format: `pretty` for people, `json` for machines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// The slog drain dropshot logs into.
pub struct RequestLog {
    journal: Arc<Journal>,
    clock: Clock,
    dispatch: tracing::Dispatch,
    /// Whether debug lines are wanted (else the drain skips dropshot's chatter unread).
    debug: bool,
}

impl RequestLog {
    /// A logger writing `format` lines at `level` and above to `writer`, and recording every
    /// request in `journal`.
    pub fn logger<W>(
        journal: Arc<Journal>,
        clock: Clock,
        level: tracing::Level,
        format: LogFormat,
        writer: W,
    ) -> slog::Logger
    where
        W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
    {
        let builder = tracing_subscriber::fmt()
            .with_max_level(level)
            .with_writer(writer)
            .with_target(false)
            .with_ansi(false);
        let dispatch = match format {
            LogFormat::Pretty => tracing::Dispatch::new(builder.compact().finish()),
            LogFormat::Json => tracing::Dispatch::new(builder.json().flatten_event(true).finish()),
        };
        let debug = level >= tracing::Level::DEBUG;
        let drain = RequestLog { journal, clock, dispatch, debug };
        slog::Logger::root(std::sync::Mutex::new(drain).fuse(), slog::o!())
    }
}

/// The key-value pairs of a record, as text.
#[derive(Default)]
struct Values(HashMap<String, String>);

impl slog::Serializer for Values {
    fn emit_arguments(&mut self, key: Key, value: &Arguments) -> slog::Result {
        self.0.entry(key.to_string()).or_insert_with(|| value.to_string());
        Ok(())
    }
}

impl Drain for RequestLog {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, inherited: &OwnedKVList) -> Result<(), slog::Never> {
        let message = record.msg().to_string();
        let wanted = message == SUBJECT
            || message.starts_with(COMPLETED)
            || record.level().is_at_least(slog::Level::Warning)
            || self.debug;
        if !wanted {
            // dropshot's chatter below warning level, and debug logging off: nothing to do.
            return Ok(());
        }
        let mut values = Values::default();
        let _ = record.kv().serialize(record, &mut values);
        let _ = inherited.serialize(record, &mut values);
        let values = values.0;
        let request_id = values.get("req_id").cloned().unwrap_or_default();
        tracing::dispatcher::with_default(&self.dispatch, || {
            if message == SUBJECT {
                if let Some(subject) = values.get("subject") {
                    let mut subjects =
                        self.journal.subjects.lock().unwrap_or_else(|p| p.into_inner());
                    subjects.insert(request_id, subject.clone());
                }
            } else if message.starts_with(COMPLETED) {
                self.completed(request_id, &values);
            } else if record.level().is_at_least(slog::Level::Warning) {
                tracing::warn!(request_id = %request_id, "{message}");
            } else {
                tracing::debug!(request_id = %request_id, "{message}");
            }
        });
        Ok(())
    }
}

impl RequestLog {
    fn completed(&self, request_id: String, values: &HashMap<String, String>) {
        let subject =
            self.journal.subjects.lock().unwrap_or_else(|p| p.into_inner()).remove(&request_id);
        let uri = values.get("uri").map(String::as_str).unwrap_or_default();
        let (path, query) = match uri.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (uri, None),
        };
        let entry = Entry {
            time: self.clock.now(),
            method: values.get("method").cloned().unwrap_or_default(),
            path: path.to_string(),
            query,
            status: values.get("response_code").and_then(|s| s.parse().ok()).unwrap_or(0),
            latency_ms: values
                .get("latency_us")
                .and_then(|s| s.parse::<f64>().ok())
                .map_or(0.0, |us| us / 1000.0),
            subject,
            request_id,
        };
        tracing::info!(
            request_id = %entry.request_id,
            method = %entry.method,
            path = %entry.path,
            query = entry.query.as_deref().unwrap_or(""),
            status = entry.status,
            latency_ms = entry.latency_ms,
            subject = entry.subject.as_deref().unwrap_or("-"),
            "request"
        );
        self.journal.push(entry);
    }
}
