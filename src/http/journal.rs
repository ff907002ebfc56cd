//! What happened to every request, in two forms: one structured log line per request (request
//! id, method, path, status, latency, subject) through `tracing`, and the request journal the
//! test-control API lists.
//!
//! dropshot logs through `slog` and ends every request, whatever answered it (an operation,
//! an extractor error, the router), with a "request completed" record carrying the request id,
//! method, URI, status and latency. [`RequestLog`] is the slog drain that turns those records
//! into journal entries and log lines. Operations add the caller with
//! [`Journal::note_subject`]; request bodies are never seen here, so no password or token can
//! reach the log or the journal.
//!
//! The drain runs on every request, so it reads only the five values it needs, straight from
//! the record (no map of every value as text), and takes no lock of its own. An entry keeps the
//! time and the subject as numbers; they become text only when listed or logged.
//!
//! The subject cannot ride with the request to the drain: dropshot runs each handler in a task
//! of its own and logs "request completed" from the connection's task, with only the request's
//! own values (id, method, URI, status, latency). So operations note it in a map by request id,
//! which the drain empties; the map hashes with foldhash (randomly seeded, cheaper than SipHash).

use std::collections::VecDeque;
use std::fmt::Arguments;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};

use chrono::DateTime;
use slog::{Drain, Key, OwnedKVList, Record, KV};
use uuid::Uuid;

use crate::api::{types, HttpResponseOk};
use crate::clock::Clock;
use crate::config::LogFormat;

/// How many requests the journal keeps (the oldest go first).
pub const JOURNAL_CAPACITY: usize = 1000;

/// How dropshot's record of a finished request starts (one variant adds why the handler did
/// not finish).
const COMPLETED: &str = "request completed";

#[derive(Debug, Clone)]
pub struct Entry {
    /// When the request completed, in milliseconds since the epoch.
    pub time_ms: i64,
    pub request_id: String,
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub status: u16,
    pub latency_ms: f64,
    pub subject: Option<Uuid>,
}

#[derive(Debug, Default)]
pub struct Journal {
    entries: Mutex<VecDeque<Entry>>,
    /// Subjects of requests still in flight, by request id (see [`RequestKey`]).
    subjects: Mutex<foldhash::HashMap<RequestKey, Uuid>>,
}

impl Journal {
    /// Room for the next entry: when the journal is full, the oldest entry leaves now and its
    /// texts' buffers are handed back (cleared) to be written over, so that a full journal
    /// (the usual state of a busy server) records a request without allocating or freeing.
    fn recycled(&self) -> Fields {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let oldest = match entries.len() >= JOURNAL_CAPACITY {
            true => entries.pop_front(),
            false => None,
        };
        drop(entries);
        let Some(mut oldest) = oldest else {
            return Fields::default();
        };
        for text in [&mut oldest.request_id, &mut oldest.method, &mut oldest.path] {
            text.clear();
        }
        let mut query = oldest.query.take().unwrap_or_default();
        query.clear();
        Fields {
            request_id: oldest.request_id,
            method: oldest.method,
            uri: oldest.path,
            query,
            ..Fields::default()
        }
    }

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

    /// Records who is calling in request `request_id`, for its journal entry and log line.
    pub fn note_subject(&self, request_id: &str, subject: Uuid) {
        if let Ok(key) = RequestKey::try_from(request_id.as_bytes()) {
            let mut subjects = self.subjects.lock().unwrap_or_else(|p| p.into_inner());
            subjects.insert(key, subject);
        }
    }

    fn take_subject(&self, request_id: &str) -> Option<Uuid> {
        let key = RequestKey::try_from(request_id.as_bytes()).ok()?;
        self.subjects.lock().unwrap_or_else(|p| p.into_inner()).remove(&key)
    }
}

/// A request id as the subjects map keeps it: its text in place, no allocation. dropshot's
/// request ids are UUIDs in their 36-character text form (a request with an id of another length
/// would get no subject; the journal tests would show that at a dropshot upgrade).
type RequestKey = [u8; uuid::fmt::Hyphenated::LENGTH];

/// The test-control listing: the newest entries first, filtered by path prefix and status;
/// `count` is of all that match, `items` at most `limit` of them.
pub fn list(journal: &Journal, q: types::JournalListQuery) -> HttpResponseOk<types::JournalList> {
    let entries = journal.entries(|e| {
        q.path.as_deref().is_none_or(|p| e.path.starts_with(p))
            && q.status.is_none_or(|s| i64::from(e.status) == s)
    });
    let count = i64::try_from(entries.len()).unwrap_or(i64::MAX);
    let items = entries
        .into_iter()
        .take(usize::try_from(q.limit).unwrap_or(usize::MAX))
        .map(|e| types::JournalEntry {
            time: DateTime::from_timestamp_millis(e.time_ms).unwrap_or_default(),
            request_id: e.request_id,
            method: e.method,
            path: e.path,
            query: e.query,
            status: e.status.into(),
            latency_ms: e.latency_ms,
            subject: e.subject.map(|s| s.to_string()),
        })
        .collect();
    HttpResponseOk::Value(types::JournalList { count, items })
}

/// The slog drain dropshot logs into.
pub struct RequestLog {
    journal: Arc<Journal>,
    clock: Clock,
    /// Only ever used to emit events; a panic in a subscriber leaves nothing half-changed here.
    dispatch: AssertUnwindSafe<tracing::Dispatch>,
    /// Whether request lines are wanted (else requests only go to the journal).
    info: bool,
    /// Whether debug lines are wanted (else the drain skips dropshot's chatter unread).
    debug: bool,
}

/// Where log lines go: `format` lines at `level` and above, to `writer`.
pub fn log_dispatch<W>(level: tracing::Level, format: LogFormat, writer: W) -> tracing::Dispatch
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(writer)
        .with_target(false)
        .with_ansi(false);
    match format {
        LogFormat::Pretty => tracing::Dispatch::new(builder.compact().finish()),
        LogFormat::Json => tracing::Dispatch::new(builder.json().flatten_event(true).finish()),
    }
}

impl RequestLog {
    /// A logger writing lines at `level` and above into `dispatch` (see [`log_dispatch`]), and
    /// recording every request in `journal`.
    pub fn logger(
        journal: Arc<Journal>,
        clock: Clock,
        level: tracing::Level,
        dispatch: tracing::Dispatch,
    ) -> slog::Logger {
        let drain = RequestLog {
            journal,
            clock,
            dispatch: AssertUnwindSafe(dispatch),
            info: level >= tracing::Level::INFO,
            debug: level >= tracing::Level::DEBUG,
        };
        slog::Logger::root(drain.fuse(), slog::o!())
    }
}

/// The values of a record this drain uses; dropshot gives the texts as `&str`, the numbers as
/// integers.
#[derive(Default)]
struct Fields {
    request_id: String,
    method: String,
    uri: String,
    /// Not a value of the record: a buffer for the URI's query, if it has one.
    query: String,
    status: u16,
    latency_us: u128,
}

impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, _key: Key, _value: &Arguments) -> slog::Result {
        Ok(())
    }

    fn emit_str(&mut self, key: Key, value: &str) -> slog::Result {
        let field = match key.as_ref() {
            "req_id" => &mut self.request_id,
            "method" => &mut self.method,
            "uri" => &mut self.uri,
            _ => return Ok(()),
        };
        // The record's own values come first, then the inherited ones: the first one counts.
        if field.is_empty() {
            value.clone_into(field);
        }
        Ok(())
    }

    fn emit_u16(&mut self, key: Key, value: u16) -> slog::Result {
        if key == "response_code" {
            self.status = value;
        }
        Ok(())
    }

    fn emit_u128(&mut self, key: Key, value: u128) -> slog::Result {
        if key == "latency_us" {
            self.latency_us = value;
        }
        Ok(())
    }
}

impl Drain for RequestLog {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, inherited: &OwnedKVList) -> Result<(), slog::Never> {
        let completed = record.msg().as_str().is_some_and(|m| m.starts_with(COMPLETED));
        let warning = record.level().is_at_least(slog::Level::Warning);
        if !(completed || warning || self.debug) {
            // dropshot's chatter below warning level, and debug logging off: nothing to do.
            return Ok(());
        }
        let mut fields = match completed {
            true => self.journal.recycled(),
            false => Fields::default(),
        };
        let _ = record.kv().serialize(record, &mut fields);
        let _ = inherited.serialize(record, &mut fields);
        if completed {
            self.completed(fields);
            return Ok(());
        }
        tracing::dispatcher::with_default(&self.dispatch, || {
            let request_id = &fields.request_id;
            if warning {
                tracing::warn!(request_id = %request_id, "{}", record.msg());
            } else {
                tracing::debug!(request_id = %request_id, "{}", record.msg());
            }
        });
        Ok(())
    }
}

impl RequestLog {
    fn completed(&self, fields: Fields) {
        let subject = self.journal.take_subject(&fields.request_id);
        let (mut path, mut query) = (fields.uri, fields.query);
        let query = path.find('?').map(|at| {
            query.push_str(&path[at + 1..]);
            path.truncate(at);
            query
        });
        let entry = Entry {
            time_ms: self.clock.now_millis(),
            method: fields.method,
            path,
            query,
            status: fields.status,
            latency_ms: fields.latency_us as f64 / 1000.0,
            subject,
            request_id: fields.request_id,
        };
        if self.info {
            let mut subject = [0; uuid::fmt::Hyphenated::LENGTH];
            let subject = match entry.subject {
                Some(s) => &*s.hyphenated().encode_lower(&mut subject),
                None => "-",
            };
            tracing::dispatcher::with_default(&self.dispatch, || {
                tracing::info!(
                    request_id = %entry.request_id,
                    method = %entry.method,
                    path = %entry.path,
                    query = entry.query.as_deref().unwrap_or(""),
                    status = entry.status,
                    latency_ms = entry.latency_ms,
                    subject,
                    "request"
                );
            });
        }
        self.journal.push(entry);
    }
}
