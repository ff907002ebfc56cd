//! The PostgreSQL engine: the store's records in one PostgreSQL database that several servers
//! share, so they serve one state. It implements [`Engine`](super::engine::Engine) with the
//! same semantics as sled; what differs is where the locks live (in the database, so they
//! hold across servers) and what durability costs (a commit).
//!
//! # Layout
//!
//! One table beside each of sled's trees (the SQL is in `migrations/`):
//!
//! | table         | columns                                  | sled's tree(s)               |
//! |---------------|------------------------------------------|------------------------------|
//! | `users`       | `id` (pk), `username_key` (unique),      | `users`, `passwords`,        |
//! |               | `json`, `password`                       | `usernames`, `meta` count    |
//! | `user_tags`   | `user_id` (fk, cascade), `tag`; pk both, | `tag_counts`                 |
//! |               | index on `tag`                           |                              |
//! | `credentials` | `user_id` (fk, cascade), `id`, `json`    | `credentials`                |
//! | `listeners`   | `id` (pk), `json`                        | `listeners`                  |
//! | `connections` | `id` (pk), `json`                        | `connections`                |
//! | `documents`   | `kind`, `name` (pk both), `value`        | `settings`, `meta` `auth.*`  |
//! | `schema_migrations` | `version` (pk), `applied`          | `meta` `layout`              |
//!
//! Records are the same JSON as in sled, as `text` (not `jsonb`, which would reorder and
//! respace it): a user's `json` is exactly what the API answers, so a read is one lookup and
//! no decoding, and its password (a [`PasswordHash`](super::PasswordHash) as JSON) is a column
//! of its own. `username_key` is the username lower-cased by the server
//! ([`super::users::username_key`]: Rust's `to_lowercase`, not SQL's `lower()`, so both
//! engines agree on every script), and its unique constraint *is* the uniqueness check: an
//! insert or update that would take a name in use fails in the database (SQLSTATE 23505 on
//! `users_username_unique`), never after a read that another server could race. A user's
//! tags are kept once each (sled counts a tag listed twice twice; only the distinct tags are
//! ever read, so the answers are the same); listing them reads the distinct values of the
//! `tag` index and filters them as sled does, in Rust. `username_key` and `tag` are `bytea`
//! (the strings' UTF-8): compared and ordered by their bytes, as sled's keys are, whatever
//! the database's locale, and able to hold a NUL character, which `text` cannot. uuids order
//! by their bytes in PostgreSQL as in sled, so "id order" is the same order, and for UUIDv7
//! ids the order of creation.
//!
//! There is no stored user count: a listing counts the rows (`count(*)`) in the same
//! statement that reads its page, so `count` and `items` come from one snapshot; a counter
//! row would make every create and delete of every server wait on one row lock.
//!
//! # What each method does in SQL
//!
//! - Single reads and single-row writes are one prepared statement (deadpool's
//!   `prepare_cached`: prepared once per connection) in autocommit: `user_insert` is one
//!   statement too (a data-modifying `WITH` writes the user and its tags), `user_delete` a
//!   `DELETE` whose foreign keys cascade to the tags and credentials, the `*_insert_absent`
//!   methods `INSERT ... ON CONFLICT DO NOTHING`.
//! - `document_insert_absent`: that insert, then (when another writer was first) a read of
//!   the stored value in a new statement, which sees the first writer's commit.
//! - Methods that take a closure run it inside one transaction, under a lock that holds
//!   across servers: `user_change` and `credential_change` read the row `FOR UPDATE`, apply
//!   the closure and write the row (and the tags that changed) back; `connections_change`
//!   locks the connection (or every connection, in id order, so two such writes cannot
//!   deadlock) the same way and writes the changed ones in one `UPDATE`; `listener_write`
//!   takes the transaction-scoped advisory lock [`LISTENER_LOCK`] (one listener write at a
//!   time on the database: address uniqueness is a check over every open listener, which no
//!   row lock covers), reads every listener, and writes what `decide` says.
//! - `clear` deletes every row but the secrets in one transaction; `flush` has nothing to
//!   do; `health` runs `SELECT 1`; `shared` is true (other servers write the database too).
//!
//! # Point reads
//!
//! Reads of one row by its key (a user's JSON or password, a listener, a connection: what
//! every `GET` of one record and every token check does) do not take a connection of their
//! own: they share [`READERS`] connections of the pool, round robin, several reads in flight
//! on each. tokio-postgres pipelines them (one socket write and one read carry several), so a
//! read costs the server and the database fewer system calls and wake-ups: in one run of
//! `scripts/bench --postgres`, a GET went from 51 to 40 us of the server's CPU and from 42 to
//! 28 us of the database's, 45% to 63% of sled's GETs. A reader found closed is replaced by a
//! new connection from the pool on its next use. Listings, writes and transactions take a
//! connection of their own, so a slow one never holds up the point reads.
//!
//! # Durability
//!
//! Every write method returns after its transaction committed, with the database's
//! `synchronous_commit` (on, by default): the commit is in PostgreSQL's write-ahead log on
//! disk, and so is every write a 2xx answered. Several servers' commits share the log's
//! flushes in PostgreSQL itself (its own group commit).
//!
//! # Migrations
//!
//! [`connect`](Postgres::connect) brings the schema up to date before the server serves: the
//! files in `migrations/` are applied in version order, each in its own transaction that
//! also records it in `schema_migrations`, all while holding the session-level advisory
//! lock [`MIGRATION_LOCK`], so servers starting together on a fresh database migrate it once
//! (the others wait, then find it done). A database at a version this server does not know
//! (migrated by a newer server) is refused rather than served with a schema it cannot read.
//!
//! # Connection failures
//!
//! `connect` retries (every [`RETRY`]) until the database answers or its `wait` passes, and
//! then fails with [`StoreError::Unreachable`] naming the database, host and port (never the
//! password) and the last error; a database that answers with a refusal (a wrong password,
//! an unknown database) fails at once. While serving, connections come from a pool of
//! [`POOL_SIZE`]: a statement on a connection that failed or closed, or no connection within
//! [`POOL_TIMEOUT`], is `Unreachable` (503), so a database that goes away answers at once
//! or within seconds, never hangs; an error the database answers for a statement is
//! [`StoreError::Database`] (500); a record that does not decode is `Corrupt`. The pool never
//! hands out a connection it knows closed, and opens new ones as needed, so the server
//! recovers by itself when the database is back. TCP keepalives and a TCP user timeout
//! bound how long a connection to a host that vanished (no reset) stays in use.

mod migrations;
mod records;
mod rows;
#[cfg(test)]
mod tests;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use tokio_postgres::config::Host;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use super::StoreError;

/// Connections the pool keeps at most (per server). Commits waiting at the same time share
/// one flush of PostgreSQL's log, so creates per second grow with the connections writing at
/// once: at 32 concurrent creates, a pool of 16 made about 3,000/s, one of 32 about 6,000/s
/// (measured on this engine alone). PostgreSQL's default `max_connections` (100) leaves room
/// for three servers.
pub const POOL_SIZE: usize = 32;
/// Connections of the pool that point reads share.
const READERS: usize = 4;
/// How long a statement waits for a pooled connection, or for a new one to be made.
pub const POOL_TIMEOUT: Duration = Duration::from_secs(5);
/// How often `connect` tries again while the database does not answer.
pub const RETRY: Duration = Duration::from_millis(250);
/// The advisory lock held while migrating (session-scoped); its key is "privxmig".
pub const MIGRATION_LOCK: i64 = 0x7072_6976_786d_6967;
/// The advisory lock of listener writes (transaction-scoped); its key is "privxlis".
pub const LISTENER_LOCK: i64 = 0x7072_6976_786c_6973;

/// The store's records in a PostgreSQL database (see the module docs).
pub struct Postgres {
    pool: Pool,
    /// Connections of the pool that point reads share (see "Point reads").
    readers: Vec<std::sync::Mutex<Option<Arc<deadpool_postgres::Object>>>>,
    next_reader: AtomicUsize,
}

impl Postgres {
    /// Connects to the database at `url` (a `postgres://` URL or a key=value string), waiting
    /// up to `wait` for it to answer, and brings its schema up to date.
    pub async fn connect(url: &str, wait: Duration) -> Result<Postgres, StoreError> {
        let mut config: tokio_postgres::Config = url.parse().map_err(|e| StoreError::Invalid {
            property: "database_url",
            message: format!("not a PostgreSQL connection URL: {}", describe(&e)),
        })?;
        config
            .application_name("privx-mock")
            .connect_timeout(POOL_TIMEOUT)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3)
            .tcp_user_timeout(Duration::from_secs(30));
        let mut client = first_connection(&config, wait).await?;
        migrations::run(&mut client).await?;
        drop(client);
        let manager = Manager::from_config(
            config,
            NoTls,
            // `Fast` checks `is_closed`: a connection whose server went away is dropped.
            ManagerConfig { recycling_method: RecyclingMethod::Fast },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .wait_timeout(Some(POOL_TIMEOUT))
            .create_timeout(Some(POOL_TIMEOUT))
            .recycle_timeout(Some(POOL_TIMEOUT))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|e| StoreError::Database(e.to_string()))?;
        let readers = (0..READERS).map(|_| std::sync::Mutex::new(None)).collect();
        Ok(Postgres { pool, readers, next_reader: AtomicUsize::new(0) })
    }

    async fn client(&self) -> Result<deadpool_postgres::Object, StoreError> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs a read of one row (by its key) in autocommit on one of the shared reader
    /// connections, and answers its rows (see "Point reads").
    async fn point_read(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let slot = &self.readers[self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS];
        let held = slot.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let reader = match held.filter(|reader| !reader.is_closed()) {
            Some(reader) => reader,
            None => {
                let reader = Arc::new(self.client().await?);
                *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(reader.clone());
                reader
            }
        };
        let statement = reader.prepare_cached(sql).await.map_err(pg_error)?;
        reader.query(&statement, params).await.map_err(pg_error)
    }

    /// Runs one statement in autocommit and answers its rows.
    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.query(&statement, params).await.map_err(pg_error)
    }

    /// Runs one statement in autocommit and answers the number of rows it changed.
    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> Result<u64, StoreError> {
        let client = self.client().await?;
        let statement = client.prepare_cached(sql).await.map_err(pg_error)?;
        client.execute(&statement, params).await.map_err(pg_error)
    }
}

/// Runs one statement in transaction `tx` and answers its rows.
async fn tx_query(
    tx: &deadpool_postgres::Transaction<'_>,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<Row>, StoreError> {
    let statement = tx.prepare_cached(sql).await.map_err(pg_error)?;
    tx.query(&statement, params).await.map_err(pg_error)
}

/// The first connection, for the migrations: retried until the database answers or `wait`
/// passes.
async fn first_connection(
    config: &tokio_postgres::Config,
    wait: Duration,
) -> Result<tokio_postgres::Client, StoreError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        // Every attempt may take `RETRY` at least, so even a `wait` of zero tries once.
        let limit = deadline.saturating_duration_since(tokio::time::Instant::now()).max(RETRY);
        let last = match tokio::time::timeout(limit, config.connect(NoTls)).await {
            Ok(Ok((client, connection))) => {
                // The connection's messages are handled by this task until the client is
                // dropped.
                tokio::spawn(async move { drop(connection.await) });
                return Ok(client);
            }
            Ok(Err(e)) if !unreachable(&e) => {
                return Err(StoreError::Database(format!("{}: {}", target(config), describe(&e))))
            }
            Ok(Err(e)) => describe(&e),
            Err(_) => "no answer".to_string(),
        };
        if tokio::time::Instant::now() + RETRY >= deadline {
            return Err(StoreError::Unreachable(format!(
                "{} did not answer within {wait:?}: {last}",
                target(config)
            )));
        }
        tokio::time::sleep(RETRY).await;
    }
}

/// The database `config` names, for messages: database, user, host and port, but never the
/// password.
fn target(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let host = match host {
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            let port = config.get_ports().get(i).or(config.get_ports().first()).unwrap_or(&5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = config.get_user().unwrap_or("(default user)");
    let database = config.get_dbname().unwrap_or(user);
    format!("PostgreSQL database {database:?} on {} as user {user:?}", hosts.join(","))
}

/// An error and its cause: tokio-postgres's own message only says what kind it is.
fn describe(e: &tokio_postgres::Error) -> String {
    match std::error::Error::source(e) {
        Some(cause) => format!("{e}: {cause}"),
        None => e.to_string(),
    }
}

/// Whether `e` means the database could not be reached (rather than that it refused a
/// statement): anything but an answer of the database's own is the connection's, and so are
/// the answers of a server that is shutting down, starting or out of connections.
fn unreachable(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P") || code == "53300"
        }
        None => true,
    }
}

fn pg_error(e: tokio_postgres::Error) -> StoreError {
    if unreachable(&e) {
        StoreError::Unreachable(describe(&e))
    } else {
        StoreError::Database(describe(&e))
    }
}

fn pool_error(e: PoolError) -> StoreError {
    match e {
        PoolError::Backend(e) => pg_error(e),
        PoolError::Timeout(_) => StoreError::Unreachable(format!(
            "no connection to the database within {POOL_TIMEOUT:?}"
        )),
        e => StoreError::Unreachable(e.to_string()),
    }
}

/// The `username_key` column: the key both engines find usernames by, as UTF-8.
fn username_key(username: &str) -> Vec<u8> {
    super::users::username_key(username).into_bytes()
}

/// A count or offset for SQL's `bigint`.
fn to_i64(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}
