//! Extender connection listeners: temporary, each open until its `closes_at`. The address is
//! the socket the caller bound for it (see `crate::relay`); the store only keeps it unique
//! among open listeners, which is why every listener write is decided by the engine's
//! [`listener_write`](super::engine::Engine::listener_write), one at a time, from every
//! listener stored.
//!
//! Expired listeners are not deleted by a timer: every read filters them out by their
//! `closes_at`, and creating a listener may take over an expired listener's address.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::engine::ListenerChange;
use super::{listing, sort_by_key, Authorship, Listing, Page, Stamp, Store, StoreError};

/// How long a listener stays open when the create request does not say.
pub const DEFAULT_KEEP_OPEN_SEC: i64 = 300;

/// The fields of a listener that a client sets.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct ListenerFields {
    pub network: String,
    pub destination: String,
    #[serde(default)]
    pub source: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ListenerRecord {
    pub id: Uuid,
    #[serde(flatten)]
    pub fields: ListenerFields,
    pub address: String,
    pub closes_at: DateTime<Utc>,
    #[serde(flatten)]
    pub authorship: Authorship,
}

impl ListenerRecord {
    fn is_open(&self, now: DateTime<Utc>) -> bool {
        self.closes_at > now
    }

    /// Seconds until the listener closes, rounded up: an open listener never reads 0.
    pub fn closed_in_sec(&self, now: DateTime<Utc>) -> i64 {
        let ms = (self.closes_at - now).num_milliseconds().max(0);
        (ms + 999) / 1000
    }
}

/// The keys listeners can be listed by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ListenerSort {
    Id,
    Network,
    Destination,
    Source,
    Address,
    Created,
    Updated,
}

fn closes_at(
    now: DateTime<Utc>,
    keep_open_sec: i64,
    property: &'static str,
) -> Result<DateTime<Utc>, StoreError> {
    if !(1..=365 * 24 * 3600).contains(&keep_open_sec) {
        return Err(StoreError::Invalid {
            property,
            message: format!("{property} must be between 1 and one year in seconds"),
        });
    }
    Ok(now + Duration::seconds(keep_open_sec))
}

fn validate(fields: &ListenerFields) -> Result<(), StoreError> {
    for (property, value) in [("network", &fields.network), ("destination", &fields.destination)] {
        if value.is_empty() {
            return Err(StoreError::Invalid {
                property,
                message: format!("{property} must not be empty"),
            });
        }
    }
    Ok(())
}

/// Refuses `record`'s address if another open listener in `all` has it.
fn check_address_free(
    all: &[ListenerRecord],
    record: &ListenerRecord,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let taken =
        all.iter().any(|l| l.id != record.id && l.is_open(now) && l.address == record.address);
    if !record.address.is_empty() && taken && record.is_open(now) {
        return Err(StoreError::Duplicate { property: "address", value: record.address.clone() });
    }
    Ok(())
}

/// The open listener `id` among `all`.
fn open_one(
    all: &[ListenerRecord],
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<ListenerRecord, StoreError> {
    all.iter()
        .find(|l| l.id == id && l.is_open(now))
        .cloned()
        .ok_or_else(|| StoreError::not_found("listener", id))
}

impl Store {
    /// Every open listener, in id order.
    pub async fn listeners_open(
        &self,
        now: DateTime<Utc>,
    ) -> Result<Vec<ListenerRecord>, StoreError> {
        let mut all = self.engine.listeners().await?;
        all.retain(|l| l.is_open(now));
        Ok(all)
    }

    /// Creates a listener at `address`; it stays open `keep_open_sec` seconds.
    pub async fn listener_create(
        &self,
        id: Uuid,
        fields: ListenerFields,
        address: String,
        keep_open_sec: Option<i64>,
        stamp: Stamp,
    ) -> Result<ListenerRecord, StoreError> {
        let keep_open_sec = keep_open_sec.unwrap_or(DEFAULT_KEEP_OPEN_SEC);
        let record = ListenerRecord {
            id,
            fields,
            address,
            closes_at: closes_at(stamp.now, keep_open_sec, "keep_open_sec")?,
            authorship: Authorship::new(stamp),
        };
        self.listener_insert(record, stamp.now).await
    }

    /// Inserts `record` unless a listener with its id exists (then returns that one). Its
    /// address, if it has one yet, must be no other open listener's.
    pub(super) async fn listener_insert(
        &self,
        record: ListenerRecord,
        now: DateTime<Utc>,
    ) -> Result<ListenerRecord, StoreError> {
        validate(&record.fields)?;
        let decide = move |all: Vec<ListenerRecord>| {
            if let Some(existing) = all.iter().find(|l| l.id == record.id) {
                return Ok(ListenerChange::Keep(existing.clone()));
            }
            check_address_free(&all, &record, now)?;
            Ok(ListenerChange::Put(record))
        };
        self.engine.listener_write(Box::new(decide)).await
    }

    /// Gives an open listener loaded without an address the one bound for it.
    pub async fn listener_set_address(
        &self,
        id: Uuid,
        address: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let decide = move |all: Vec<ListenerRecord>| {
            let mut record = open_one(&all, id, now)?;
            record.address = address;
            check_address_free(&all, &record, now)?;
            Ok(ListenerChange::Put(record))
        };
        self.engine.listener_write(Box::new(decide)).await.map(drop)
    }

    /// An open listener.
    pub async fn listener_get(
        &self,
        id: Uuid,
        now: DateTime<Utc>,
    ) -> Result<ListenerRecord, StoreError> {
        self.engine
            .listener(id)
            .await?
            .filter(|l| l.is_open(now))
            .ok_or_else(|| StoreError::not_found("listener", id))
    }

    pub async fn listener_list(
        &self,
        sort: ListenerSort,
        descending: bool,
        page: Page,
        now: DateTime<Utc>,
    ) -> Result<Listing<ListenerRecord>, StoreError> {
        let open = self.listeners_open(now).await?;
        let sort = |open: &mut [ListenerRecord]| match sort {
            ListenerSort::Id => sort_by_key(open, descending, |l| l.id),
            ListenerSort::Network => sort_by_key(open, descending, |l| l.fields.network.clone()),
            ListenerSort::Destination => {
                sort_by_key(open, descending, |l| l.fields.destination.clone())
            }
            ListenerSort::Source => sort_by_key(open, descending, |l| l.fields.source.clone()),
            ListenerSort::Address => sort_by_key(open, descending, |l| l.address.clone()),
            ListenerSort::Created => sort_by_key(open, descending, |l| l.authorship.created),
            ListenerSort::Updated => sort_by_key(open, descending, |l| l.authorship.updated),
        };
        Ok(listing(open, sort, page))
    }

    /// Updates an open listener's fields with `update`, which may refuse the result;
    /// `keep_open_sec`, if given, closes it that many seconds from now. Returns the record.
    pub async fn listener_update(
        &self,
        id: Uuid,
        update: impl FnOnce(&mut ListenerFields) -> Result<(), StoreError> + Send + 'static,
        keep_open_sec: Option<i64>,
        stamp: Stamp,
    ) -> Result<ListenerRecord, StoreError> {
        let closes = keep_open_sec.map(|s| closes_at(stamp.now, s, "closed_in_sec")).transpose()?;
        let decide = move |all: Vec<ListenerRecord>| {
            let mut record = open_one(&all, id, stamp.now)?;
            update(&mut record.fields)?;
            validate(&record.fields)?;
            record.closes_at = closes.unwrap_or(record.closes_at);
            record.authorship.touch(stamp);
            Ok(ListenerChange::Put(record))
        };
        self.engine.listener_write(Box::new(decide)).await
    }

    /// Deletes an open listener.
    pub async fn listener_delete(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let decide = move |all: Vec<_>| Ok(ListenerChange::Delete(open_one(&all, id, now)?));
        self.engine.listener_write(Box::new(decide)).await.map(drop)
    }
}
