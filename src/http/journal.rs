//! What happened to every request, in two forms: one structured log line per request (request
//! id, method, path, status, latency, subject) through `tracing`, and the request journal the
//! test-control API lists. Request bodies are never seen here, so no password or token can
//! reach the log or the journal.
//!
//! Requests come in two ways. Every request the router takes (all but the few dropshot refuses
//! before any endpoint runs) is watched through [`Observe`]: its id, method and URI are copied
//! when it is placed, the operation notes its caller ([`note_subject`]) in a slot that is the
//! request's while its answer is polled, and the entry is recorded with the answer (its latency
//! runs from the placing to the answer). The requests dropshot answers itself (a method no
//! endpoint has, a path that does not decode to UTF-8) reach only its log: [`RequestLog`], the
//! slog drain dropshot logs into, records those from its "request completed" record, the only
//! ones that carry an external error message.
//!
//! The drain alone could see every request, and once did: but it runs in the connection's task,
//! not the handler's, so the caller had to wait for it in a map by request id, and reading every
//! record's values and that map cost 5-6% of a get user's throughput.
//!
//! A full journal (the usual state of a busy server) records a request without allocating or
//! freeing: the entry that leaves hands its texts' buffers to the next request watched. An
//! entry keeps the time and the subject as numbers; they become text only when listed or logged.

use std::cell::Cell;
use std::collections::VecDeque;
use std::fmt::Arguments;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::Instant;

use chrono::DateTime;
use dropshot::{HttpResponseError, RequestContext};
use slog::{Drain, Key, OwnedKVList, Record, KV};
use uuid::Uuid;

use super::context::Context;
use crate::api::{types, HttpResponseOk, Observe, RouteError, Routed};
use crate::clock::Clock;
use crate::config::LogFormat;

/// How many requests the journal keeps (the oldest go first).
pub const JOURNAL_CAPACITY: usize = 1000;

/// How many departed entries' buffers are kept for reuse: as many as requests are usually in
/// flight at once (a load test's connections), so that a burst leaves no lasting pile.
const MAX_SPARE: usize = 64;

/// dropshot's record of an answered request. (Its variant for a handler that finished after
/// its client left, "request completed after handler was already cancelled", is only ever of a
/// watched request, and is logged as the warning it is.)
const COMPLETED: &str = "request completed";

/// The value only dropshot's own answers put in their [`COMPLETED`] record: the catch-all
/// endpoint's errors are `RouteError`s, which dropshot renders as the handler's and logs without
/// one (it would log one for an error that failed to serialize; the envelopes are plain
/// structs of texts and numbers, which cannot).
const EXTERNAL_MESSAGE: &str = "error_message_external";

thread_local! {
    /// The caller of the request whose answer this thread is polling, once its operation knows
    /// it (see [`Watched`]).
    static SUBJECT: Cell<Option<Uuid>> = const { Cell::new(None) };
}

/// Records `subject` as the caller of the request being answered, for its journal entry and log
/// line. It counts only when called from the request's own future (as `Context::begin` is),
/// not from a task it spawns.
pub(crate) fn note_subject(subject: Uuid) {
    SUBJECT.set(Some(subject));
}

#[derive(Debug)]
struct Entry {
    /// When the request completed, in milliseconds since the epoch.
    time_ms: i64,
    subject: Option<Uuid>,
    fields: Fields,
}

/// What is known of a request before its entry is made; its texts' buffers are reused.
#[derive(Debug, Default)]
struct Fields {
    request_id: String,
    method: String,
    path: String,
    /// The URI's query, when `has_query`.
    query: String,
    has_query: bool,
    status: u16,
    latency_us: u128,
}

impl Fields {
    /// Empties the fields, keeping the texts' buffers.
    fn clear(&mut self) {
        for text in [&mut self.request_id, &mut self.method, &mut self.path, &mut self.query] {
            text.clear();
        }
        (self.has_query, self.status, self.latency_us) = (false, 0, 0);
    }

    /// The path and query of `uri`.
    fn set_uri(&mut self, uri: &http::Uri) {
        self.path.push_str(uri.path());
        if let Some(query) = uri.query() {
            self.query.push_str(query);
            self.has_query = true;
        }
    }

    /// The path and query of the URI dropshot logged whole in `path` (a request target in
    /// absolute form included), or the text as it came if it does not parse.
    fn split_logged_uri(&mut self) {
        let logged = std::mem::take(&mut self.path);
        match logged.parse::<http::Uri>() {
            Ok(uri) => self.set_uri(&uri),
            Err(_) => self.path = logged,
        }
    }
}

#[derive(Debug)]
pub struct Journal {
    kept: Mutex<Kept>,
    clock: Clock,
    /// Where request lines go, when they are wanted (else requests only go to the journal).
    /// Only ever used to emit events; a panic in a subscriber leaves nothing half-changed here.
    lines: Option<AssertUnwindSafe<tracing::Dispatch>>,
}

#[derive(Debug, Default)]
struct Kept {
    entries: VecDeque<Entry>,
    /// Buffers of entries that left the full journal, for requests to be watched in (at most
    /// [`MAX_SPARE`]; more requests in flight at once get new ones).
    spare: Vec<Fields>,
}

impl Journal {
    /// A journal timed by `clock`, writing a line per request into `lines` (see [`log_dispatch`])
    /// when `level` is info or finer.
    pub fn new(clock: Clock, level: tracing::Level, lines: tracing::Dispatch) -> Self {
        Journal {
            kept: Mutex::default(),
            clock,
            lines: (level >= tracing::Level::INFO).then_some(AssertUnwindSafe(lines)),
        }
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Empty fields to fill, in a departed entry's buffers if there is one.
    fn fields(&self) -> Fields {
        self.kept().spare.pop().unwrap_or_default()
    }

    /// The fields of `rqctx`'s request as it is placed.
    fn watch(&self, rqctx: &RequestContext<Context>) -> Fields {
        let mut fields = self.fields();
        fields.request_id.push_str(&rqctx.request_id);
        fields.method.push_str(rqctx.request.method().as_str());
        fields.set_uri(rqctx.request.uri());
        fields
    }

    /// Writes the request's log line, if wanted, and its entry, the oldest leaving a full
    /// journal.
    fn record(&self, fields: Fields, subject: Option<Uuid>) {
        let entry = Entry { time_ms: self.clock.now_millis(), subject, fields };
        if let Some(lines) = &self.lines {
            entry.log(lines);
        }
        let mut kept = self.kept();
        if kept.entries.len() >= JOURNAL_CAPACITY {
            if let Some(mut oldest) = kept.entries.pop_front() {
                if kept.spare.len() < MAX_SPARE {
                    oldest.fields.clear();
                    kept.spare.push(oldest.fields);
                }
            }
        }
        kept.entries.push_back(entry);
    }

    /// How many entries `keep` selects, and the newest `limit` of them, newest first.
    fn entries(
        &self,
        keep: impl Fn(&Entry) -> bool,
        limit: usize,
    ) -> (usize, Vec<types::JournalEntry>) {
        let kept = self.kept();
        let mut selected = kept.entries.iter().rev().filter(|e| keep(e));
        let listed: Vec<_> = selected.by_ref().take(limit).map(Entry::listed).collect();
        (listed.len() + selected.count(), listed)
    }

    pub fn clear(&self) {
        self.kept().entries.clear();
    }
}

impl Entry {
    fn query(&self) -> Option<&str> {
        self.fields.has_query.then_some(self.fields.query.as_str())
    }

    fn listed(&self) -> types::JournalEntry {
        let fields = &self.fields;
        types::JournalEntry {
            time: DateTime::from_timestamp_millis(self.time_ms).unwrap_or_default(),
            request_id: fields.request_id.clone(),
            method: fields.method.clone(),
            path: fields.path.clone(),
            query: self.query().map(str::to_string),
            status: fields.status.into(),
            latency_ms: latency_ms(fields.latency_us),
            subject: self.subject.map(|s| s.to_string()),
        }
    }

    fn log(&self, lines: &tracing::Dispatch) {
        let mut subject = [0; uuid::fmt::Hyphenated::LENGTH];
        let subject = match self.subject {
            Some(s) => &*s.hyphenated().encode_lower(&mut subject),
            None => "-",
        };
        let fields = &self.fields;
        tracing::dispatcher::with_default(lines, || {
            tracing::info!(
                request_id = %fields.request_id,
                method = %fields.method,
                path = %fields.path,
                query = self.query().unwrap_or(""),
                status = fields.status,
                latency_ms = latency_ms(fields.latency_us),
                subject,
                "request"
            );
        });
    }
}

fn latency_ms(latency_us: u128) -> f64 {
    latency_us as f64 / 1000.0
}

/// Every request the router places is [`Watched`].
impl Observe for Context {
    fn observe(
        rqctx: RequestContext<Self>,
        place: impl FnOnce(RequestContext<Self>) -> Routed,
    ) -> impl Future<Output = Result<http::Response<dropshot::Body>, RouteError>> + Send {
        let journal = Arc::clone(&rqctx.context().journal);
        let fields = journal.watch(&rqctx);
        Watched { journal, fields, started: Instant::now(), subject: None, answer: place(rqctx) }
    }
}

/// A request's answer, polled with its caller's slot in place ([`note_subject`]); its entry is
/// recorded once the answer is ready. (A future of its own and a plain thread-local rather than
/// an `async` block around tokio's task-local scope: that one moved the request's fields and the
/// answer about between its states, and cost a few hundred instructions a request more.)
struct Watched {
    journal: Arc<Journal>,
    fields: Fields,
    started: Instant,
    subject: Option<Uuid>,
    answer: Routed,
}

impl Future for Watched {
    type Output = Result<http::Response<dropshot::Body>, RouteError>;

    fn poll(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        // The slot is this request's while its answer is polled (a poll runs on one thread, and
        // other requests' polls come before or after it, never inside; one that panics leaves
        // its subject there for the next poll to overwrite).
        let outside = SUBJECT.replace(this.subject);
        let answer = this.answer.as_mut().poll(cx);
        this.subject = SUBJECT.replace(outside);
        let Poll::Ready(answer) = answer else {
            return Poll::Pending;
        };
        let mut fields = std::mem::take(&mut this.fields);
        fields.status = match &answer {
            Ok(response) => response.status().as_u16(),
            Err(error) => error.status_code().as_u16(),
        };
        fields.latency_us = this.started.elapsed().as_micros();
        this.journal.record(fields, this.subject);
        Poll::Ready(answer)
    }
}

/// The test-control listing: the newest entries first, filtered by path prefix and status;
/// `count` is of all that match, `items` at most `limit` of them.
pub fn list(journal: &Journal, q: types::JournalListQuery) -> HttpResponseOk<types::JournalList> {
    let keep = |e: &Entry| {
        q.path.as_deref().is_none_or(|p| e.fields.path.starts_with(p))
            && q.status.is_none_or(|s| i64::from(e.fields.status) == s)
    };
    let (count, items) = journal.entries(keep, usize::try_from(q.limit).unwrap_or(usize::MAX));
    let count = i64::try_from(count).unwrap_or(i64::MAX);
    HttpResponseOk::Value(types::JournalList { count, items })
}

/// The slog drain dropshot logs into: records the requests dropshot answers itself, and writes
/// its warnings (and, at debug level, the rest of its chatter) as log lines.
pub struct RequestLog {
    journal: Arc<Journal>,
    /// Only ever used to emit events; a panic in a subscriber leaves nothing half-changed here.
    dispatch: AssertUnwindSafe<tracing::Dispatch>,
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
    /// recording in `journal` the requests dropshot answers itself.
    pub fn logger(
        journal: Arc<Journal>,
        level: tracing::Level,
        dispatch: tracing::Dispatch,
    ) -> slog::Logger {
        let drain = RequestLog {
            journal,
            dispatch: AssertUnwindSafe(dispatch),
            debug: level >= tracing::Level::DEBUG,
        };
        slog::Logger::root(drain.fuse(), slog::o!())
    }
}

/// The values of a record the drain uses; dropshot gives the texts as `&str`, the numbers as
/// integers.
impl slog::Serializer for Fields {
    fn emit_arguments(&mut self, _key: Key, _value: &Arguments) -> slog::Result {
        Ok(())
    }

    fn emit_str(&mut self, key: Key, value: &str) -> slog::Result {
        let field = match key.as_ref() {
            "req_id" => &mut self.request_id,
            "method" => &mut self.method,
            "uri" => &mut self.path,
            _ => return Ok(()),
        };
        // The record's own values come first, then the inherited ones: the first one counts.
        if field.is_empty() {
            field.push_str(value);
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

/// Whether a record carries [`EXTERNAL_MESSAGE`] (an `Option` that is `None` emits no `str`).
#[derive(Default)]
struct ExternalMessage(bool);

impl slog::Serializer for ExternalMessage {
    fn emit_arguments(&mut self, _key: Key, _value: &Arguments) -> slog::Result {
        Ok(())
    }

    fn emit_str(&mut self, key: Key, _value: &str) -> slog::Result {
        self.0 |= key == EXTERNAL_MESSAGE;
        Ok(())
    }
}

impl Drain for RequestLog {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &Record, inherited: &OwnedKVList) -> Result<(), slog::Never> {
        if record.msg().as_str() == Some(COMPLETED) {
            // Only the record's own values (two to four, for a request the router took) are
            // read to tell whether the router saw it.
            let mut external = ExternalMessage::default();
            let _ = record.kv().serialize(record, &mut external);
            if external.0 {
                let mut fields = self.journal.fields();
                let _ = record.kv().serialize(record, &mut fields);
                let _ = inherited.serialize(record, &mut fields);
                fields.split_logged_uri();
                self.journal.record(fields, None);
            }
            return Ok(());
        }
        let warning = record.level().is_at_least(slog::Level::Warning);
        if !(warning || self.debug) {
            // dropshot's chatter below warning level, and debug logging off: nothing to do.
            return Ok(());
        }
        let mut fields = Fields::default();
        let _ = record.kv().serialize(record, &mut fields);
        let _ = inherited.serialize(record, &mut fields);
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
