//! Extender connection listeners: temporary, each open until its `closes_at`. The address is
//! the socket the caller bound for it (see `crate::relay`); the store only keeps it unique
//! among open listeners.

use std::collections::BTreeSet;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{get_json, sort_by_key, Authorship, Listing, Page, Stamp, Store, StoreError};

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

impl Store {
    /// Every open listener, in id order.
    pub fn listeners_open(&self, now: DateTime<Utc>) -> Result<Vec<ListenerRecord>, StoreError> {
        let mut open = Vec::new();
        for value in self.trees()?.listeners.iter().values() {
            let record: ListenerRecord = serde_json::from_slice(&value?)?;
            if record.is_open(now) {
                open.push(record);
            }
        }
        Ok(open)
    }

    /// Creates a listener at `address`; it stays open `keep_open_sec` seconds.
    pub fn listener_create(
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
        self.listener_insert(record, stamp.now)
    }

    /// Inserts `record` unless a listener with its id exists (then returns that one). Its
    /// address, if it has one yet, must be no other open listener's.
    pub(super) fn listener_insert(
        &self,
        record: ListenerRecord,
        now: DateTime<Utc>,
    ) -> Result<ListenerRecord, StoreError> {
        validate(&record.fields)?;
        // The uniqueness check reads every open listener and then writes: one at a time.
        let _guard = self.listener_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(existing) =
            get_json::<ListenerRecord>(&self.trees()?.listeners, record.id.as_bytes())?
        {
            return Ok(existing);
        }
        self.check_address_free(&record, now)?;
        self.writable()?.listeners.insert(record.id.as_bytes(), serde_json::to_vec(&record)?)?;
        Ok(record)
    }

    fn check_address_free(
        &self,
        record: &ListenerRecord,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let taken: BTreeSet<String> = self
            .listeners_open(now)?
            .into_iter()
            .filter(|l| l.id != record.id)
            .map(|l| l.address)
            .collect();
        if !record.address.is_empty() && taken.contains(&record.address) && record.is_open(now) {
            return Err(StoreError::Duplicate {
                property: "address",
                value: record.address.clone(),
            });
        }
        Ok(())
    }

    /// Gives an open listener loaded without an address the one bound for it.
    pub fn listener_set_address(
        &self,
        id: Uuid,
        address: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let _guard = self.listener_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut record = self.listener_get(id, now)?;
        record.address = address;
        self.check_address_free(&record, now)?;
        self.writable()?.listeners.insert(id.as_bytes(), serde_json::to_vec(&record)?)?;
        Ok(())
    }

    /// An open listener.
    pub fn listener_get(&self, id: Uuid, now: DateTime<Utc>) -> Result<ListenerRecord, StoreError> {
        get_json::<ListenerRecord>(&self.trees()?.listeners, id.as_bytes())?
            .filter(|l| l.is_open(now))
            .ok_or_else(|| StoreError::not_found("listener", id))
    }

    pub fn listener_list(
        &self,
        sort: ListenerSort,
        descending: bool,
        page: Page,
        now: DateTime<Utc>,
    ) -> Result<Listing<ListenerRecord>, StoreError> {
        let mut open = self.listeners_open(now)?;
        match sort {
            ListenerSort::Id => sort_by_key(&mut open, descending, |l| l.id),
            ListenerSort::Network => {
                sort_by_key(&mut open, descending, |l| l.fields.network.clone())
            }
            ListenerSort::Destination => {
                sort_by_key(&mut open, descending, |l| l.fields.destination.clone())
            }
            ListenerSort::Source => sort_by_key(&mut open, descending, |l| l.fields.source.clone()),
            ListenerSort::Address => sort_by_key(&mut open, descending, |l| l.address.clone()),
            ListenerSort::Created => sort_by_key(&mut open, descending, |l| l.authorship.created),
            ListenerSort::Updated => sort_by_key(&mut open, descending, |l| l.authorship.updated),
        }
        Ok(Listing { count: open.len() as u64, items: page.apply(open.into_iter()) })
    }

    /// Updates an open listener's fields with `update`, which may refuse the result;
    /// `keep_open_sec`, if given, closes it that many seconds from now. Returns the record.
    pub fn listener_update(
        &self,
        id: Uuid,
        update: impl FnOnce(&mut ListenerFields) -> Result<(), StoreError>,
        keep_open_sec: Option<i64>,
        stamp: Stamp,
    ) -> Result<ListenerRecord, StoreError> {
        let closes = keep_open_sec.map(|s| closes_at(stamp.now, s, "closed_in_sec")).transpose()?;
        let _guard = self.listener_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let mut record = self.listener_get(id, stamp.now)?;
        update(&mut record.fields)?;
        validate(&record.fields)?;
        record.closes_at = closes.unwrap_or(record.closes_at);
        record.authorship.touch(stamp);
        self.writable()?.listeners.insert(id.as_bytes(), serde_json::to_vec(&record)?)?;
        Ok(record)
    }

    /// Deletes an open listener.
    pub fn listener_delete(&self, id: Uuid, now: DateTime<Utc>) -> Result<(), StoreError> {
        let _guard = self.listener_lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.listener_get(id, now)?;
        self.writable()?.listeners.remove(id.as_bytes())?;
        Ok(())
    }
}
