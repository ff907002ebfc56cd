//! Listeners that really listen: real sockets on 127.0.0.1, an echo server started by each
//! test as the destination, the relay's counters read through the test-control API. Nothing
//! waits on time: each step waits for the event it is about (a read, an answer), and every
//! test is bounded.

use std::future::Future;
use std::hash::{DefaultHasher, Hasher};
use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::atomic::{AtomicU16, Ordering};
use std::time::Duration;

use chrono::Duration as Span;
use privx_mock::client::types;
use privx_mock::clock::Clock;
use privx_mock::server::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use uuid::Uuid;

use crate::binary;
use crate::helpers::{assert_envelope, bearer_client, spawn, TestApp};

const LISTENERS: &str = "/extender-service/api/v1/listeners";

/// Runs `test` to completion or fails after a generous bound.
async fn bounded<T>(test: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), test).await.expect("finished in time")
}

/// Listener ports of a test server's own: a block of 50 in 43000-43999 per server, outside the
/// default range (where the other tests' servers take the lowest free port) and apart from the
/// other servers of this file. With shared ranges a listener of another test could take a
/// port between a restart's close and reopen, or receive a connection meant for another.
fn ports_of_its_own() -> RangeInclusive<u16> {
    static NEXT: AtomicU16 = AtomicU16::new(43000);
    let first = NEXT.fetch_add(50, Ordering::Relaxed);
    assert!(first < 44000, "more relay test servers than port blocks");
    first..=first + 49
}

/// A test server with the test-control API (for the counters) and listener ports of its own
/// ([`ports_of_its_own`]), as `adjust` changes it.
async fn relay_app(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn(None, |config| {
        config.test_control = true;
        config.relay.ports = ports_of_its_own();
        adjust(config);
    })
    .await
}

/// A destination on 127.0.0.1 that echoes what it reads and, once the client has half-closed,
/// sends `trailer` and closes: the trailer arriving proves the half-close went through.
async fn echo_server(trailer: &'static [u8]) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (mut read, mut write) = stream.into_split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
                let _ = write.write_all(trailer).await;
                let _ = write.shutdown().await;
            });
        }
    });
    port
}

/// A port on 127.0.0.1 that refuses connections: bound (so no one else takes it while the
/// returned socket lives) but not listening.
fn dead_port() -> (tokio::net::TcpSocket, u16) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let port = socket.local_addr().unwrap().port();
    (socket, port)
}

async fn create(
    app: &TestApp,
    destination: &str,
    source: &[&str],
    keep: u64,
) -> (Uuid, SocketAddr) {
    let body = serde_json::json!({
        "network": "tcp", "destination": destination, "source": source, "keep_open_sec": keep
    });
    let response = app.http.post(app.url(LISTENERS)).json(&body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let listener: types::Listener = response.json().await.unwrap();
    (listener.id.unwrap(), listener.address.unwrap().parse().unwrap())
}

async fn traffic(app: &TestApp, id: Uuid) -> types::ListenerTraffic {
    let list = app.client.listener_traffic_list().send().await.unwrap().into_inner();
    list.items.into_iter().find(|t| t.id == id).expect("counters for the listener")
}

/// Sends `data`, half-closes, and returns everything read back until the other side closes.
async fn exchange(stream: TcpStream, data: Vec<u8>) -> Vec<u8> {
    let (mut read, mut write) = stream.into_split();
    let writer = tokio::spawn(async move {
        write.write_all(&data).await.unwrap();
        write.shutdown().await.unwrap();
        write
    });
    let mut back = Vec::new();
    read.read_to_end(&mut back).await.unwrap();
    drop(writer.await.unwrap());
    back
}

/// Sends `ping` and reads its echo: the connection is relayed end to end.
async fn ping(stream: &mut TcpStream) {
    stream.write_all(b"ping").await.unwrap();
    let mut echo = [0; 4];
    stream.read_exact(&mut echo).await.unwrap();
    assert_eq!(&echo, b"ping");
}

/// Waits for the other side to close `stream` (an end of stream or a reset).
async fn assert_closed(stream: &mut TcpStream) {
    let mut byte = [0; 1];
    match stream.read(&mut byte).await {
        Ok(0) => {}
        Ok(_) => panic!("data instead of a close"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

fn checksum(data: &[u8]) -> u64 {
    let mut hasher = DefaultHasher::new();
    hasher.write(data);
    hasher.finish()
}

fn pseudo_random(len: usize) -> Vec<u8> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

#[tokio::test]
async fn a_large_transfer_goes_both_ways_and_survives_a_half_close() {
    bounded(async {
        let app = relay_app(|_| {}).await;
        let echo = echo_server(b"bye").await;
        let (id, address) =
            create(&app, &format!("ext/127.0.0.1:{echo}"), &["127.0.0.1"], 60).await;
        assert!(address.ip().is_loopback(), "loopback by default: {address}");
        let data = pseudo_random(8 << 20);
        let back = exchange(TcpStream::connect(address).await.unwrap(), data.clone()).await;
        let (echoed, trailer) = back.split_at(back.len() - 3);
        assert_eq!(trailer, b"bye", "the destination still sends after the client half-closed");
        assert_eq!(echoed.len(), data.len());
        assert_eq!(checksum(echoed), checksum(&data));
        let counted = traffic(&app, id).await;
        assert_eq!(counted.total_connections, 1);
        assert_eq!(counted.bytes_to_destination, data.len() as u64);
        assert_eq!(counted.bytes_from_destination, data.len() as u64 + 3);
        assert_eq!((counted.refused_connections, counted.failed_connections), (0, 0));
    })
    .await;
}

#[tokio::test]
async fn a_destination_that_does_not_read_holds_the_client_back() {
    bounded(async {
        let app = relay_app(|_| {}).await;
        // More than every socket buffer on the way can hold (tcp_rmem/tcp_wmem maxima).
        const TOTAL: usize = 256 << 20;
        let destination = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = destination.local_addr().unwrap().port();
        let (start_reading, reading) = tokio::sync::oneshot::channel::<()>();
        let sink = tokio::spawn(async move {
            let (mut stream, _) = destination.accept().await.unwrap();
            let _ = reading.await;
            let mut buffer = vec![0; 1 << 20];
            let mut count = 0;
            while let n @ 1.. = stream.read(&mut buffer).await.unwrap() {
                count += n;
            }
            count
        });
        let (id, address) = create(&app, &format!("ext/127.0.0.1:{port}"), &[], 60).await;
        let mut client = TcpStream::connect(address).await.unwrap();
        let chunk = vec![0x5a; 1 << 20];
        let mut written = 0;
        // Writes until a write makes no progress for a while: the relay stopped reading.
        while written < TOTAL {
            let write = client.write(&chunk[..chunk.len().min(TOTAL - written)]);
            match tokio::time::timeout(Duration::from_millis(500), write).await {
                Ok(n) => written += n.unwrap(),
                Err(_) => break,
            }
        }
        assert!(written < TOTAL, "the relay took all {written} bytes of a stalled connection");
        assert!(traffic(&app, id).await.bytes_to_destination < TOTAL as u64);
        start_reading.send(()).unwrap();
        while written < TOTAL {
            written += client.write(&chunk[..chunk.len().min(TOTAL - written)]).await.unwrap();
        }
        client.shutdown().await.unwrap();
        assert_eq!(sink.await.unwrap(), TOTAL, "everything arrives once the destination reads");
        assert_eq!(traffic(&app, id).await.bytes_to_destination, TOTAL as u64);
    })
    .await;
}

#[tokio::test]
async fn sources_are_enforced() {
    bounded(async {
        let app = relay_app(|_| {}).await;
        let echo = echo_server(b"").await;
        let destination = format!("ext/127.0.0.1:{echo}");
        for allowed in [&[][..], &["127.0.0.0/8"], &["192.0.2.1", "localhost"]] {
            let (id, address) = create(&app, &destination, allowed, 60).await;
            ping(&mut TcpStream::connect(address).await.unwrap()).await;
            assert_eq!(traffic(&app, id).await.total_connections, 1, "{allowed:?}");
        }
        let (id, address) = create(&app, &destination, &["10.0.0.0/8", "192.0.2.1"], 60).await;
        let mut refused = TcpStream::connect(address).await.unwrap();
        assert_closed(&mut refused).await;
        let counted = traffic(&app, id).await;
        assert_eq!((counted.refused_connections, counted.total_connections), (1, 0));
    })
    .await;
}

#[tokio::test]
async fn expiry_on_the_logical_clock_closes_live_connections() {
    bounded(async {
        let app = relay_app(|config| config.clock = Clock::deterministic(1)).await;
        let echo = echo_server(b"").await;
        let (id, address) = create(&app, &format!("ext/127.0.0.1:{echo}"), &[], 60).await;
        let mut live = TcpStream::connect(address).await.unwrap();
        ping(&mut live).await;
        app.advance_clock(Span::seconds(59));
        ping(&mut live).await;
        assert_eq!(traffic(&app, id).await.open_connections, 1);
        app.advance_clock(Span::seconds(2));
        assert_closed(&mut live).await;
        assert!(TcpStream::connect(address).await.is_err(), "the listener stopped accepting");
        assert_eq!(traffic(&app, id).await.open_connections, 0);
    })
    .await;
}

#[tokio::test]
async fn delete_closes_the_listener_and_its_connections_at_once() {
    bounded(async {
        let app = relay_app(|_| {}).await;
        let echo = echo_server(b"").await;
        let (id, address) = create(&app, &format!("ext/127.0.0.1:{echo}"), &[], 600).await;
        let mut live = TcpStream::connect(address).await.unwrap();
        ping(&mut live).await;
        app.client.listener_delete().id(id).send().await.unwrap();
        assert!(TcpStream::connect(address).await.is_err(), "closed before the answer");
        assert_closed(&mut live).await;
        assert_eq!(traffic(&app, id).await.open_connections, 0);
    })
    .await;
}

#[tokio::test]
async fn an_update_keeps_it_open_and_new_connections_follow_the_new_destination() {
    bounded(async {
        let app = relay_app(|_| {}).await;
        let (first, second) = (echo_server(b"first").await, echo_server(b"second").await);
        let (id, address) = create(&app, &format!("ext/127.0.0.1:{first}"), &[], 60).await;
        let mut old = TcpStream::connect(address).await.unwrap();
        ping(&mut old).await;
        let body = types::Listener {
            destination: Some(format!("ext/127.0.0.1:{second}").try_into().unwrap()),
            closed_in_sec: std::num::NonZeroU64::new(3600),
            ..Default::default()
        };
        app.client.listener_update().id(id).body(body).send().await.unwrap();
        app.advance_clock(Span::seconds(61));
        let new = exchange(TcpStream::connect(address).await.unwrap(), b"x".to_vec()).await;
        assert_eq!(new, b"xsecond", "a new connection goes to the new destination");
        let old = exchange(old, b"y".to_vec()).await;
        assert_eq!(old, b"yfirst", "an ongoing connection stays where it was");
    })
    .await;
}

#[tokio::test]
async fn a_restart_rebinds_open_listeners_at_their_addresses() {
    bounded(async {
        let mut app = relay_app(|_| {}).await;
        let echo = echo_server(b"!").await;
        let (_, address) = create(&app, &format!("ext/127.0.0.1:{echo}"), &[], 600).await;
        app.restart().await;
        let back = exchange(TcpStream::connect(address).await.unwrap(), b"again".to_vec()).await;
        assert_eq!(back, b"again!");
    })
    .await;
}

#[tokio::test]
async fn an_exhausted_port_range_is_out_of_resources_until_a_port_is_free() {
    bounded(async {
        let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = held.local_addr().unwrap().port();
        let app = relay_app(|config| config.relay.ports = port..=port).await;
        let body = serde_json::json!({"network": "tcp", "destination": "ext/127.0.0.1:1"});
        let response = app.http.post(app.url(LISTENERS)).json(&body).send().await.unwrap();
        let envelope = assert_envelope(response, 503).await;
        assert_eq!(envelope.error_code, types::ErrorCode::OutOfResources);
        drop(held);
        let (id, address) = create(&app, "ext/127.0.0.1:1", &[], 60).await;
        assert_eq!(address.port(), port);
        let response = app.http.post(app.url(LISTENERS)).json(&body).send().await.unwrap();
        assert_envelope(response, 503).await;
        app.client.listener_delete().id(id).send().await.unwrap();
        assert_eq!(create(&app, "ext/127.0.0.1:1", &[], 60).await.1, address);
    })
    .await;
}

#[tokio::test]
async fn a_server_out_of_open_files_is_out_of_resources_until_one_is_free() {
    bounded(async {
        let dir = tempfile::tempdir().unwrap();
        // Soft and hard alike, so the server cannot raise its own limit; ports of its own, so
        // that the listeners it holds are in no other test's way.
        let server = binary::start_with(dir.path(), |command| {
            command.args(["--listener-ports", "42000-42099"]);
            binary::limit_open_files(command, 64, 64);
        });
        // One client, one connection: each listener then costs the server one file.
        let client = bearer_client(&server.token().await);
        let body = serde_json::json!({"network": "tcp", "destination": "ext/127.0.0.1:1"});
        let mut created = Vec::new();
        let refused = loop {
            let response = client.post(server.url(LISTENERS)).json(&body).send().await.unwrap();
            if response.status().as_u16() != 201 {
                break response;
            }
            let listener: types::Listener = response.json().await.unwrap();
            created.push(listener.id.unwrap());
            assert!(created.len() < 64, "64 listeners within a limit of 64 files");
        };
        let envelope = assert_envelope(refused, 503).await;
        assert_eq!(envelope.error_code, types::ErrorCode::OutOfResources);
        let deleted = client.delete(server.url(&format!("{LISTENERS}/{}", created[0])));
        assert_eq!(deleted.send().await.unwrap().status().as_u16(), 200);
        let response = client.post(server.url(LISTENERS)).json(&body).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 201, "a freed file serves the next listener");
    })
    .await;
}

#[tokio::test]
async fn a_dead_destination_closes_the_client_and_is_counted() {
    bounded(async {
        let app = relay_app(|_| {}).await;
        let (_bound, dead) = dead_port();
        let (id, address) = create(&app, &format!("ext/127.0.0.1:{dead}"), &[], 60).await;
        let mut client = TcpStream::connect(address).await.unwrap();
        assert_closed(&mut client).await;
        let counted = traffic(&app, id).await;
        assert_eq!((counted.failed_connections, counted.total_connections), (1, 0));
        assert!(app.log().contains("destination unreachable"), "the failure is logged");
    })
    .await;
}

#[tokio::test]
async fn a_routed_prefix_stands_in_for_a_remote_network() {
    bounded(async {
        let app = relay_app(|config| {
            config.relay.routes.insert("remote".into(), "127.0.0.1".into());
        })
        .await;
        let echo = echo_server(b".").await;
        let (_, address) = create(&app, &format!("remote/db.internal:{echo}"), &[], 60).await;
        let back = exchange(TcpStream::connect(address).await.unwrap(), b"routed".to_vec()).await;
        assert_eq!(back, b"routed.");
    })
    .await;
}
