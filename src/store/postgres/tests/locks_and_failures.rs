//! The engine's locks across connections, its migrations, and its failures and recovery.

use std::time::Instant;

use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn listener_writes_are_one_at_a_time() {
    let Some(db) = engine().await else { return };
    warm(&db).await;
    // Twenty writers each put a listener at one address unless an open one has it.
    let tasks: Vec<_> = (0..20)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.listener_write(Box::new(|all| {
                    let new = listener("127.0.0.1:9000");
                    match all.iter().any(|l| l.address == new.address) {
                        true => {
                            Err(StoreError::Duplicate { property: "address", value: new.address })
                        }
                        false => Ok(ListenerChange::Put(new)),
                    }
                }))
                .await
            })
        })
        .collect();
    let mut stored = Vec::new();
    for task in tasks {
        if let Ok(record) = task.await.unwrap() {
            stored.push(record);
        }
    }
    assert_eq!(stored.len(), 1);
    assert_eq!(db.listeners().await.unwrap(), stored);
    let id = stored[0].id;
    let kept = db.listener_write(Box::new(move |all| Ok(ListenerChange::Keep(all[0].clone()))));
    assert_eq!(kept.await.unwrap().id, id);
    let deleted =
        db.listener_write(Box::new(move |all| Ok(ListenerChange::Delete(all[0].clone()))));
    assert_eq!(deleted.await.unwrap().id, id);
    assert!(db.listener(id).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_change_under_a_lock_on_each() {
    let Some(db) = engine().await else { return };
    warm(&db).await;
    let records: Vec<ConnectionRecord> = (0..3).map(|_| connection()).collect();
    for record in &records {
        assert!(db.connection_insert_absent(record.clone()).await.unwrap());
    }
    assert!(!db.connection_insert_absent(records[0].clone()).await.unwrap());
    // Concurrent read-modify-writes of one connection lose none of the changes.
    let target = records[1].id;
    let tasks: Vec<_> = (0..10)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                db.connections_change(
                    Some(target),
                    Box::new(|c| {
                        c.details.bytes_in += 1;
                        true
                    }),
                )
                .await
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap().unwrap();
    }
    assert_eq!(db.connection(target).await.unwrap().unwrap().details.bytes_in, 10);
    // Only the connections the change says it changed are written.
    let first = records[0].id;
    db.connections_change(
        None,
        Box::new(move |c| {
            c.details.bytes_out = 7;
            c.id != first
        }),
    )
    .await
    .unwrap();
    let out: Vec<i64> =
        db.connections().await.unwrap().iter().map(|c| c.details.bytes_out).collect();
    assert_eq!(out, [0, 7, 7]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_first_document_writer_wins_and_clear_keeps_secrets() {
    let Some(db) = engine().await else { return };
    warm(&db).await;
    let tasks: Vec<_> = (0..10)
        .map(|i| {
            let db = db.clone();
            tokio::spawn(async move {
                db.document_insert_absent(DocumentKind::Secret, "signing_key", json!(i)).await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for task in tasks {
        answers.push(task.await.unwrap().unwrap());
    }
    let stored = db.document(DocumentKind::Secret, "signing_key").await.unwrap().unwrap();
    assert!(answers.iter().all(|a| *a == stored), "{answers:?} vs {stored}");
    db.document_insert_absent(DocumentKind::Setting, "options", json!({"a": 1})).await.unwrap();
    assert_eq!(db.documents(DocumentKind::Setting).await.unwrap().len(), 1);

    db.user_insert(user("ivan", &["t"]), false).await.unwrap();
    db.listener_write(Box::new(|_| Ok(ListenerChange::Put(listener(""))))).await.unwrap();
    db.connection_insert_absent(connection()).await.unwrap();
    db.clear().await.unwrap();
    assert_eq!(db.user_list(None, None, ALL).await.unwrap().count, 0);
    assert!(db.user_tags(None, false, ALL).await.unwrap().is_empty());
    assert!(db.listeners().await.unwrap().is_empty());
    assert!(db.connections().await.unwrap().is_empty());
    assert!(db.documents(DocumentKind::Setting).await.unwrap().is_empty());
    let secrets = db.documents(DocumentKind::Secret).await.unwrap();
    assert_eq!(secrets.get("signing_key"), Some(&stored));
}

#[tokio::test]
async fn servers_connecting_together_migrate_once() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_database(&admin).await;
    let (a, b) = tokio::join!(Postgres::connect(&url, WAIT), Postgres::connect(&url, WAIT));
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.shared(), "servers on one database share its state");
    let versions = a.query("SELECT version FROM schema_migrations", &[]).await.unwrap();
    let versions: Vec<i32> = versions.iter().map(|row| row.get(0)).collect();
    assert_eq!(versions, [1]);
    b.user_insert(user("shared", &[]), false).await.unwrap();
    assert!(a.user_by_name("SHARED").await.unwrap().is_some());

    // A database a newer server migrated is refused.
    a.execute("INSERT INTO schema_migrations (version) VALUES (1000)", &[]).await.unwrap();
    match Postgres::connect(&url, WAIT).await {
        Err(StoreError::Database(message)) => assert!(message.contains("newer"), "{message}"),
        other => panic!("{:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn connecting_to_a_closed_port_fails_within_the_wait() {
    if admin_url().is_none() {
        return;
    }
    let port = {
        let socket = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        socket.local_addr().unwrap().port()
    };
    let url = format!("postgres://privx:sekrit@127.0.0.1:{port}/privx");
    let wait = Duration::from_secs(1);
    let started = Instant::now();
    let result = Postgres::connect(&url, wait).await;
    let elapsed = started.elapsed();
    match result {
        Err(StoreError::Unreachable(message)) => {
            assert!(message.contains(&format!("127.0.0.1:{port}")), "{message}");
            assert!(message.contains("\"privx\""), "{message}");
            assert!(!message.contains("sekrit"), "{message}");
        }
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(elapsed >= wait - RETRY, "gave up early: {elapsed:?}");
    assert!(elapsed < wait + Duration::from_secs(2), "took {elapsed:?}");
}

#[tokio::test]
async fn a_database_that_refuses_fails_at_once() {
    let Some(admin) = admin_url() else { return };
    let (base, _) = admin.rsplit_once('/').unwrap();
    let missing = format!("{base}/privx_missing_{}", Uuid::new_v4().simple());
    let started = Instant::now();
    let result = Postgres::connect(&missing, WAIT).await;
    match result {
        Err(StoreError::Database(message)) => assert!(message.contains("privx_missing_")),
        other => panic!("{:?}", other.map(|_| ())),
    }
    assert!(started.elapsed() < WAIT / 2, "took {:?}", started.elapsed());
}

#[tokio::test]
async fn service_recovers_when_its_connections_are_killed() {
    let Some(admin) = admin_url() else { return };
    let url = fresh_database(&admin).await;
    let db = Postgres::connect(&url, WAIT).await.unwrap();
    db.health().await.unwrap();
    let before = user("before", &[]);
    db.user_insert(before.clone(), false).await.unwrap();
    // Every shared reader connection is opened.
    for _ in 0..READERS {
        db.user_json(before.id).await.unwrap();
    }
    let database = url.rsplit_once('/').unwrap().1.split('?').next().unwrap().to_string();
    let (client, connection) = tokio_postgres::connect(&admin, NoTls).await.unwrap();
    tokio::spawn(connection);
    let killed = client
        .execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
            &[&database],
        )
        .await
        .unwrap();
    assert!(killed >= 1);
    // A killed connection may answer a request with `Unreachable`; service comes back
    // without a new `connect`.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match db.health().await {
            Ok(()) => break,
            Err(StoreError::Unreachable(_)) if Instant::now() < deadline => {}
            Err(e) => panic!("{e:?}"),
        }
    }
    db.user_insert(user("after", &[]), false).await.unwrap();
    assert!(db.user_by_name("after").await.unwrap().is_some());
    // Each shared reader, found closed, is replaced: every point read works again.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut in_a_row = 0;
    while in_a_row < READERS {
        match db.user_json(before.id).await {
            Ok(_) => in_a_row += 1,
            Err(StoreError::Unreachable(_)) if Instant::now() < deadline => in_a_row = 0,
            Err(e) => panic!("{e:?}"),
        }
    }
}
