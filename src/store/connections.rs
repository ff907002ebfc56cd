//! Connections (sessions through PrivX): PrivX's connection objects, which fixtures and the
//! test-control API create, the read API lists and the terminate operations end.
//!
//! Termination is two steps in time, CONNECTED to TERMINATING to TERMINATED, with no timer: a
//! terminate writes TERMINATING together with the planned `disconnected` (the request's time
//! plus the server's delay) and `duration`, and every read shows the record as it is at the
//! time of reading ([`ConnectionRecord::at`]): TERMINATED once the planned time has passed,
//! TERMINATING without the planned times before. So the state survives restarts, and under a
//! deterministic clock every answer follows from the requests alone.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::fixtures::FixtureStamps;
use super::{listing, sort_by_key, Authorship, Listing, Page, Stamp, Store, StoreError};

/// A connection as stored and, read [`at`](ConnectionRecord::at) a time, as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionRecord {
    pub id: Uuid,
    #[serde(flatten)]
    pub details: ConnectionDetails,
    pub connected: DateTime<Utc>,
    #[serde(flatten)]
    pub authorship: Authorship,
}

/// The fields of a connection that fixtures may give and leave out alike.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionDetails {
    #[serde(rename = "type", default = "default_type")]
    pub kind: String,
    #[serde(default = "default_mode")]
    pub mode: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proxy_id: Option<String>,
    pub user: ConnectionUser,
    pub target_host: ConnectionHost,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_host_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_host_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    #[serde(default)]
    pub status: ConnectionStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disconnected: Option<DateTime<Utc>>,
    /// Whole seconds from `connected` to `disconnected`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_activity: Option<DateTime<Utc>>,
    #[serde(default)]
    pub bytes_in: i64,
    #[serde(default)]
    pub bytes_out: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_disconnect: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub termination_reason: Option<String>,
}

fn default_type() -> String {
    "SSH".to_string()
}

fn default_mode() -> String {
    "UI".to_string()
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionUser {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ConnectionHost {
    pub id: Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub common_name: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum ConnectionStatus {
    #[default]
    Connected,
    Disconnected,
    Terminating,
    Terminated,
}

/// What a termination writes: who asks, why, and how long ending the session takes.
#[derive(Debug, Clone)]
pub struct Termination {
    pub reason: Option<String>,
    pub delay: Duration,
    pub stamp: Stamp,
}

impl ConnectionRecord {
    /// The connection as it is at `now`: a termination whose delay has passed has ended.
    pub fn at(mut self, now: DateTime<Utc>) -> Self {
        let details = &mut self.details;
        if details.status == ConnectionStatus::Terminating {
            match details.disconnected {
                Some(end) if end <= now => details.status = ConnectionStatus::Terminated,
                _ => (details.disconnected, details.duration) = (None, None),
            }
        }
        self
    }

    /// Starts terminating a CONNECTED connection; any other is left as it is.
    fn terminate(&mut self, termination: &Termination) -> bool {
        if self.details.status != ConnectionStatus::Connected {
            return false;
        }
        let now = termination.stamp.now;
        let end = now + termination.delay;
        let details = &mut self.details;
        details.status = ConnectionStatus::Terminating;
        details.force_disconnect = Some(now);
        details.termination_reason.clone_from(&termination.reason);
        details.disconnected = Some(end);
        details.duration = Some((end - self.connected).num_seconds().max(0));
        self.authorship.touch(termination.stamp);
        true
    }
}

/// The order of a listing.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionSort {
    Id,
    Type,
    Mode,
    User,
    TargetHost,
    TargetHostAddress,
    RemoteAddress,
    Connected,
    Disconnected,
    Duration,
    Status,
    LastActivity,
    BytesIn,
    BytesOut,
}

/// One sort key's value; within a listing all values are of the same variant.
#[derive(PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    Text(Option<String>),
    Id(Uuid),
    Time(Option<DateTime<Utc>>),
    Number(Option<i64>),
    Status(ConnectionStatus),
}

impl ConnectionSort {
    fn value(&self, c: &ConnectionRecord) -> SortValue {
        let d = &c.details;
        match self {
            Self::Id => SortValue::Id(c.id),
            Self::Type => SortValue::Text(Some(d.kind.clone())),
            Self::Mode => SortValue::Text(Some(d.mode.clone())),
            Self::User => SortValue::Text(d.user.display_name.clone()),
            Self::TargetHost => SortValue::Text(d.target_host.common_name.clone()),
            Self::TargetHostAddress => SortValue::Text(d.target_host_address.clone()),
            Self::RemoteAddress => SortValue::Text(d.remote_address.clone()),
            Self::Connected => SortValue::Time(Some(c.connected)),
            Self::Disconnected => SortValue::Time(d.disconnected),
            Self::Duration => SortValue::Number(d.duration),
            Self::Status => SortValue::Status(d.status),
            Self::LastActivity => SortValue::Time(d.last_activity),
            Self::BytesIn => SortValue::Number(Some(d.bytes_in)),
            Self::BytesOut => SortValue::Number(Some(d.bytes_out)),
        }
    }
}

impl Store {
    /// The connection `id` as it is at `now`.
    pub async fn connection_get(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<ConnectionRecord, StoreError> {
        let record = self.engine.connection(id).await?;
        Ok(record.ok_or_else(|| StoreError::not_found("connection", id))?.at(now))
    }

    /// The connections that match (as they are at `now`), sorted by `sort` and then by id.
    pub async fn connection_list(
        &self,
        matches: impl Fn(&ConnectionRecord) -> bool,
        sort: ConnectionSort,
        descending: bool,
        page: Page,
        now: DateTime<Utc>,
    ) -> Result<Listing<ConnectionRecord>, StoreError> {
        let all = self.engine.connections().await?;
        let items = all.into_iter().map(|c| c.at(now)).filter(|c| matches(c)).collect();
        let sort = |items: &mut [ConnectionRecord]| {
            sort_by_key(items, descending, |c| (sort.value(c), c.id));
        };
        Ok(listing(items, sort, page))
    }

    /// Terminates one connection (see the module docs); unknown is `NotFound`.
    pub async fn connection_terminate(
        &self,
        id: Uuid,
        termination: Termination,
    ) -> Result<(), StoreError> {
        self.connection_get(id, termination.stamp.now).await?;
        let change = move |c: &mut ConnectionRecord| c.terminate(&termination);
        self.engine.connections_change(Some(id), Box::new(change)).await
    }

    /// Terminates every connection that `matches`; none matching is fine.
    pub async fn connections_terminate(
        &self,
        matches: impl Fn(&ConnectionRecord) -> bool + Send + Sync + 'static,
        termination: Termination,
    ) -> Result<(), StoreError> {
        let change = move |c: &mut ConnectionRecord| matches(c) && c.terminate(&termination);
        self.engine.connections_change(None, Box::new(change)).await
    }

    /// Every connection as stored, in id order.
    pub async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.engine.connections().await
    }

    /// Stores a new connection; an id already stored is `Duplicate` (test-control API).
    pub async fn connection_create(&self, record: ConnectionRecord) -> Result<(), StoreError> {
        let id = record.id;
        if !self.engine.connection_insert_absent(record).await? {
            return Err(StoreError::Duplicate { property: "id", value: id.to_string() });
        }
        Ok(())
    }
}

/// A connection in a fixtures document: a whole connection, whose times and authorship
/// default to the loading's, or the earlier `{id, host_id, user_id}` form.
#[derive(Debug, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FixtureConnection {
    Legacy(LegacyConnection),
    Whole(Box<WholeConnection>),
}

#[derive(Debug, Serialize, Deserialize)]
pub struct WholeConnection {
    pub id: Uuid,
    #[serde(flatten)]
    pub details: ConnectionDetails,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connected: Option<DateTime<Utc>>,
    #[serde(flatten)]
    pub stamps: FixtureStamps,
}

/// Layout 3's connection: only what termination used to need, flagged when terminated.
#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LegacyConnection {
    pub id: Uuid,
    pub user_id: Uuid,
    pub host_id: Uuid,
    #[serde(default)]
    pub terminated: bool,
    #[serde(default)]
    pub terminated_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub terminated_by: Option<Uuid>,
}

impl FixtureConnection {
    /// The record; what is left out comes from `stamp`.
    pub fn record(self, stamp: Stamp) -> ConnectionRecord {
        match self {
            Self::Whole(c) => ConnectionRecord {
                id: c.id,
                details: c.details,
                connected: c.connected.unwrap_or(stamp.now),
                authorship: c.stamps.or(stamp),
            },
            Self::Legacy(c) => c.record(stamp),
        }
    }
}

impl From<ConnectionRecord> for FixtureConnection {
    fn from(c: ConnectionRecord) -> Self {
        Self::Whole(Box::new(WholeConnection {
            id: c.id,
            details: c.details,
            connected: Some(c.connected),
            stamps: c.authorship.into(),
        }))
    }
}

impl LegacyConnection {
    /// A whole connection. The old form has no times: a flagged one was connected and
    /// terminated at its `terminated_at`, the others are connected at `stamp.now`.
    pub fn record(self, stamp: Stamp) -> ConnectionRecord {
        let mut record = ConnectionRecord {
            id: self.id,
            details: ConnectionDetails {
                kind: default_type(),
                mode: default_mode(),
                proxy_id: None,
                user: ConnectionUser { id: self.user_id, display_name: None },
                target_host: ConnectionHost { id: self.host_id, common_name: None },
                target_host_address: None,
                target_host_account: None,
                remote_address: None,
                status: ConnectionStatus::Connected,
                disconnected: None,
                duration: None,
                last_activity: None,
                bytes_in: 0,
                bytes_out: 0,
                force_disconnect: None,
                termination_reason: None,
            },
            connected: self.terminated_at.unwrap_or(stamp.now),
            authorship: Authorship::new(stamp),
        };
        if self.terminated {
            let at = self.terminated_at.unwrap_or(stamp.now);
            let by = Stamp { actor: self.terminated_by.unwrap_or(stamp.actor), now: at };
            let termination = Termination { reason: None, delay: Duration::zero(), stamp: by };
            record.terminate(&termination);
            record = record.at(at);
        }
        record
    }
}
