//! [`Engine`] on PostgreSQL: each method's SQL (see "What each method does in SQL" in the
//! module docs).

use std::collections::BTreeMap;

use tokio_postgres::error::SqlState;

use uuid::Uuid;

use super::rows::{
    kind_name, not_found, password_json, records, tag_set, user_of, user_write_error, USER_INSERT,
    USER_PAGE,
};
use super::{pg_error, to_i64, tx_query, username_key, Postgres, LISTENER_LOCK};
use crate::store::engine::{
    ConnectionChange, CredentialChange, DocumentKind, Engine, ListenerChange, ListenerDecision,
    UserChange,
};
use crate::store::{
    ConnectionRecord, CredentialRecord, ListenerRecord, Listing, Page, PasswordHash, StoreError,
    UserRecord,
};

#[async_trait::async_trait]
impl Engine for Postgres {
    async fn health(&self) -> Result<(), StoreError> {
        self.query("SELECT 1", &[]).await.map(drop)
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    /// Every server on the database writes it.
    fn shared(&self) -> bool {
        true
    }

    /// Other servers write behind this one's back: nothing is kept in memory.
    fn openings(&self) -> Option<u64> {
        None
    }

    async fn clear(&self) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        // Deleting the users deletes their tags and credentials (foreign keys).
        tx.batch_execute(
            "DELETE FROM users; DELETE FROM listeners; DELETE FROM connections;
             DELETE FROM documents WHERE kind <> 'secret';",
        )
        .await
        .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)
    }

    async fn document(
        &self,
        kind: DocumentKind,
        name: &str,
    ) -> Result<Option<serde_json::Value>, StoreError> {
        let rows = self
            .query(
                "SELECT value FROM documents WHERE kind = $1 AND name = $2",
                &[&kind_name(kind), &name],
            )
            .await?;
        Ok(records(&rows)?.pop())
    }

    async fn document_insert_absent(
        &self,
        kind: DocumentKind,
        name: &str,
        value: serde_json::Value,
    ) -> Result<serde_json::Value, StoreError> {
        let json = serde_json::to_string(&value)?;
        let inserted = self
            .execute(
                "INSERT INTO documents (kind, name, value) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&kind_name(kind), &name, &json],
            )
            .await?;
        if inserted == 1 {
            return Ok(value);
        }
        // Another writer was first and has committed (the insert waited for it): this new
        // statement sees its value.
        self.document(kind, name).await?.ok_or_else(|| {
            StoreError::Database(format!("document {name:?} was deleted while it was written"))
        })
    }

    async fn documents(
        &self,
        kind: DocumentKind,
    ) -> Result<BTreeMap<String, serde_json::Value>, StoreError> {
        let rows = self
            .query("SELECT name, value FROM documents WHERE kind = $1", &[&kind_name(kind)])
            .await?;
        rows.iter().map(|row| Ok((row.get(0), serde_json::from_str(row.get(1))?))).collect()
    }

    async fn user_insert(&self, record: UserRecord, if_absent: bool) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(USER_INSERT).await.map_err(pg_error)?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
            &record.id,
            &username_key(&record.profile.username),
            &serde_json::to_string(&record)?,
            &password_json(record.password.as_ref())?,
            &tag_set(&record),
        ];
        let row = client
            .query_one(&statement, &params)
            .await
            .map_err(|e| user_write_error(e, &record))?;
        if row.get::<_, i64>(0) == 0 && !if_absent {
            return Err(StoreError::Duplicate { property: "id", value: record.id.to_string() });
        }
        Ok(())
    }

    async fn user_change(&self, id: Uuid, change: UserChange) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let rows =
            tx_query(&tx, "SELECT json, password FROM users WHERE id = $1 FOR UPDATE", &[&id])
                .await?;
        let old = rows.first().map(user_of).transpose()?.ok_or_else(|| not_found("user", id))?;
        let mut new = old.clone();
        change(&mut new);
        // A change never removes a password.
        if new.password.is_none() {
            new.password.clone_from(&old.password);
        }
        let update = tx
            .prepare_cached(
                "UPDATE users SET username_key = $2, json = $3, password = $4 WHERE id = $1",
            )
            .await
            .map_err(pg_error)?;
        let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
            &id,
            &username_key(&new.profile.username),
            &serde_json::to_string(&new)?,
            &password_json(new.password.as_ref())?,
        ];
        tx.execute(&update, &params).await.map_err(|e| user_write_error(e, &new))?;
        let tags = tag_set(&new);
        if tags != tag_set(&old) {
            tx_query(
                &tx,
                "DELETE FROM user_tags WHERE user_id = $1 AND tag <> ALL($2)",
                &[&id, &tags],
            )
            .await?;
            tx_query(
                &tx,
                "INSERT INTO user_tags (user_id, tag) SELECT $1, unnest($2::bytea[])
                 ON CONFLICT DO NOTHING",
                &[&id, &tags],
            )
            .await?;
        }
        tx.commit().await.map_err(pg_error)
    }

    async fn user_delete(&self, id: Uuid) -> Result<(), StoreError> {
        // The tags and credentials go with it (foreign keys, in the same statement).
        match self.execute("DELETE FROM users WHERE id = $1", &[&id]).await? {
            0 => Err(not_found("user", id)),
            _ => Ok(()),
        }
    }

    async fn user_json(&self, id: Uuid) -> Result<Vec<u8>, StoreError> {
        let mut rows = self.point_read("SELECT json FROM users WHERE id = $1", &[&id]).await?;
        let row = rows.pop().ok_or_else(|| not_found("user", id))?;
        Ok(row.get::<_, String>(0).into_bytes())
    }

    async fn user_password(&self, id: Uuid) -> Result<Option<Option<PasswordHash>>, StoreError> {
        let rows = self.point_read("SELECT password FROM users WHERE id = $1", &[&id]).await?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let password: Option<&str> = row.get(0);
        Ok(Some(password.map(serde_json::from_str).transpose()?))
    }

    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError> {
        let rows = self
            .query(
                "SELECT json, password FROM users WHERE username_key = $1",
                &[&username_key(username)],
            )
            .await?;
        rows.first().map(user_of).transpose()
    }

    async fn user_list(
        &self,
        username: Option<&str>,
        id: Option<Uuid>,
        page: Page,
    ) -> Result<Listing<Vec<u8>>, StoreError> {
        if username.is_none() && id.is_none() {
            let rows = self.query(USER_PAGE, &[&to_i64(page.offset), &to_i64(page.limit)]).await?;
            let count = rows.first().map_or(0, |row| row.get::<_, i64>(0));
            let items = rows
                .iter()
                .filter_map(|row| row.get::<_, Option<String>>(1))
                .map(String::into_bytes)
                .collect();
            return Ok(Listing { count: u64::try_from(count).unwrap_or(0), items });
        }
        // At most one user matches: the one with that username (and that id, if given both).
        let rows = match username {
            Some(name) => {
                self.query(
                    "SELECT id, json FROM users WHERE username_key = $1",
                    &[&username_key(name)],
                )
                .await?
            }
            None => self.query("SELECT id, json FROM users WHERE id = $1", &[&id]).await?,
        };
        let found: Vec<Vec<u8>> = rows
            .into_iter()
            .filter(|row| id.is_none_or(|id| row.get::<_, Uuid>(0) == id))
            .map(|row| row.get::<_, String>(1).into_bytes())
            .collect();
        Ok(Listing { count: found.len() as u64, items: page.apply(found.into_iter()) })
    }

    async fn user_tags(
        &self,
        query: Option<&str>,
        descending: bool,
        page: Page,
    ) -> Result<Vec<String>, StoreError> {
        let rows = self.query("SELECT DISTINCT tag FROM user_tags ORDER BY tag", &[]).await?;
        // The filter is Rust's lower-casing, as on sled (SQL's `lower()` differs for some
        // scripts).
        let query = query.map(str::to_lowercase);
        let mut tags = Vec::new();
        for row in rows {
            let tag = String::from_utf8(row.get(0)).map_err(|e| {
                StoreError::Corrupt(serde::de::Error::custom(format!("a tag is not UTF-8: {e}")))
            })?;
            if query.as_ref().is_none_or(|q| tag.to_lowercase().contains(q.as_str())) {
                tags.push(tag);
            }
        }
        if descending {
            tags.reverse();
        }
        Ok(page.apply(tags.into_iter()))
    }

    async fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        let rows = self.query("SELECT json, password FROM users ORDER BY id", &[]).await?;
        rows.iter().map(user_of).collect()
    }

    async fn credentials_of(&self, user_id: Uuid) -> Result<Vec<CredentialRecord>, StoreError> {
        // One row with a null `json` for a user without credentials, none for no user.
        let rows = self
            .query(
                "SELECT c.json FROM users u LEFT JOIN credentials c ON c.user_id = u.id
                 WHERE u.id = $1 ORDER BY c.id",
                &[&user_id],
            )
            .await?;
        if rows.is_empty() {
            return Err(not_found("user", user_id));
        }
        rows.iter()
            .filter_map(|row| row.get::<_, Option<&str>>(0))
            .map(|json| Ok(serde_json::from_str(json)?))
            .collect()
    }

    async fn credential(
        &self,
        user_id: Uuid,
        id: Uuid,
    ) -> Result<Option<CredentialRecord>, StoreError> {
        let rows = self
            .query("SELECT json FROM credentials WHERE user_id = $1 AND id = $2", &[&user_id, &id])
            .await?;
        Ok(records(&rows)?.pop())
    }

    async fn credential_insert_absent(&self, record: CredentialRecord) -> Result<(), StoreError> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO credentials (user_id, id, json) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
            )
            .await
            .map_err(pg_error)?;
        let json = serde_json::to_string(&record)?;
        match client.execute(&statement, &[&record.user_id, &record.id, &json]).await {
            Err(e) if e.code() == Some(&SqlState::FOREIGN_KEY_VIOLATION) => {
                Err(not_found("user", record.user_id))
            }
            inserted => inserted.map(drop).map_err(pg_error),
        }
    }

    async fn credential_change(
        &self,
        user_id: Uuid,
        id: Uuid,
        change: CredentialChange,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        let rows = tx_query(
            &tx,
            "SELECT json FROM credentials WHERE user_id = $1 AND id = $2 FOR UPDATE",
            &[&user_id, &id],
        )
        .await?;
        let mut record: CredentialRecord =
            records(&rows)?.pop().ok_or_else(|| not_found("webauthn credential", id))?;
        change(&mut record);
        tx_query(
            &tx,
            "UPDATE credentials SET json = $3 WHERE user_id = $1 AND id = $2",
            &[&user_id, &id, &serde_json::to_string(&record)?],
        )
        .await?;
        tx.commit().await.map_err(pg_error)
    }

    async fn credential_delete(&self, user_id: Uuid, id: Uuid) -> Result<(), StoreError> {
        let deleted = self
            .execute("DELETE FROM credentials WHERE user_id = $1 AND id = $2", &[&user_id, &id])
            .await?;
        match deleted {
            0 => Err(not_found("webauthn credential", id)),
            _ => Ok(()),
        }
    }

    async fn credentials(&self) -> Result<Vec<CredentialRecord>, StoreError> {
        records(&self.query("SELECT json FROM credentials ORDER BY user_id, id", &[]).await?)
    }

    async fn listeners(&self) -> Result<Vec<ListenerRecord>, StoreError> {
        records(&self.query("SELECT json FROM listeners ORDER BY id", &[]).await?)
    }

    async fn listener(&self, id: Uuid) -> Result<Option<ListenerRecord>, StoreError> {
        let rows = self.point_read("SELECT json FROM listeners WHERE id = $1", &[&id]).await?;
        Ok(records(&rows)?.pop())
    }

    async fn listener_write(&self, decide: ListenerDecision) -> Result<ListenerRecord, StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        tx_query(&tx, "SELECT pg_advisory_xact_lock($1)", &[&LISTENER_LOCK]).await?;
        let all = records(&tx_query(&tx, "SELECT json FROM listeners ORDER BY id", &[]).await?)?;
        let change = decide(all)?;
        match &change {
            ListenerChange::Put(record) => {
                tx_query(
                    &tx,
                    "INSERT INTO listeners (id, json) VALUES ($1, $2)
                     ON CONFLICT (id) DO UPDATE SET json = excluded.json",
                    &[&record.id, &serde_json::to_string(record)?],
                )
                .await?;
            }
            ListenerChange::Delete(record) => {
                tx_query(&tx, "DELETE FROM listeners WHERE id = $1", &[&record.id]).await?;
            }
            ListenerChange::Keep(_) => {}
        }
        tx.commit().await.map_err(pg_error)?;
        Ok(change.record())
    }

    async fn connections(&self) -> Result<Vec<ConnectionRecord>, StoreError> {
        records(&self.query("SELECT json FROM connections ORDER BY id", &[]).await?)
    }

    async fn connection(&self, id: Uuid) -> Result<Option<ConnectionRecord>, StoreError> {
        let rows = self.point_read("SELECT json FROM connections WHERE id = $1", &[&id]).await?;
        Ok(records(&rows)?.pop())
    }

    async fn connection_insert_absent(&self, record: ConnectionRecord) -> Result<bool, StoreError> {
        let inserted = self
            .execute(
                "INSERT INTO connections (id, json) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                &[&record.id, &serde_json::to_string(&record)?],
            )
            .await?;
        Ok(inserted == 1)
    }

    async fn connections_change(
        &self,
        id: Option<Uuid>,
        change: ConnectionChange,
    ) -> Result<(), StoreError> {
        let mut client = self.client().await?;
        let tx = client.transaction().await.map_err(pg_error)?;
        // Every connection is locked in id order, so two such writes cannot deadlock.
        let rows = match id {
            Some(id) => {
                tx_query(&tx, "SELECT json FROM connections WHERE id = $1 FOR UPDATE", &[&id])
                    .await?
            }
            None => {
                tx_query(&tx, "SELECT json FROM connections ORDER BY id FOR UPDATE", &[]).await?
            }
        };
        let mut ids = Vec::new();
        let mut jsons = Vec::new();
        for mut record in records::<ConnectionRecord>(&rows)? {
            if change(&mut record) {
                ids.push(record.id);
                jsons.push(serde_json::to_string(&record)?);
            }
        }
        if !ids.is_empty() {
            tx_query(
                &tx,
                "UPDATE connections SET json = changed.json
                 FROM unnest($1::uuid[], $2::text[]) AS changed (id, json)
                 WHERE connections.id = changed.id",
                &[&ids, &jsons],
            )
            .await?;
        }
        tx.commit().await.map_err(pg_error)
    }
}
