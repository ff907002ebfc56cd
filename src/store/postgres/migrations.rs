//! The schema's versions: the SQL files in `migrations/`, applied once each, in order, under
//! [`MIGRATION_LOCK`] (see "Migrations" in the module docs).

use super::{pg_error, MIGRATION_LOCK};
use crate::store::StoreError;

/// Every version of the schema and the SQL that brings the one before to it. A new version
/// is a new file here, never a change to an applied one.
const MIGRATIONS: &[(i32, &str)] = &[(1, include_str!("migrations/0001_tables.sql"))];

/// Brings the database of `client` to the latest version, once across servers.
pub(super) async fn run(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    client.execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg_error)?;
    let migrated = apply(client).await;
    // Closing the session would release the lock too; unlocking says so at once.
    let unlocked = client.execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK]).await;
    migrated?;
    unlocked.map(drop).map_err(pg_error)
}

async fn apply(client: &mut tokio_postgres::Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations (
                version integer PRIMARY KEY,
                applied timestamptz NOT NULL DEFAULT now()
            )",
        )
        .await
        .map_err(pg_error)?;
    let row = client
        .query_one("SELECT coalesce(max(version), 0) FROM schema_migrations", &[])
        .await
        .map_err(pg_error)?;
    let current: i32 = row.get(0);
    let latest = MIGRATIONS.last().map_or(0, |&(version, _)| version);
    if current > latest {
        return Err(StoreError::Database(format!(
            "the database's schema is at version {current}, newer than this server knows \
             ({latest}): a newer privx-mock migrated it; run that version on it"
        )));
    }
    for &(version, sql) in MIGRATIONS.iter().filter(|&&(version, _)| version > current) {
        let tx = client.transaction().await.map_err(pg_error)?;
        tx.batch_execute(sql).await.map_err(pg_error)?;
        tx.execute("INSERT INTO schema_migrations (version) VALUES ($1)", &[&version])
            .await
            .map_err(pg_error)?;
        tx.commit().await.map_err(pg_error)?;
        tracing::info!(version, "migrated the PostgreSQL schema");
    }
    Ok(())
}
