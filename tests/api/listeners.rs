//! Extender connection listeners: temporary, sortable, with server-allocated addresses.

use std::num::NonZeroU64;

use chrono::Duration;
use privx_mock::api::SortDir;
use privx_mock::client::types;

use crate::helpers::{api_error, assert_envelope, spawn_app, TestApp};

fn secs(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).expect("non-zero")
}

async fn create(
    app: &TestApp,
    network: &str,
    destination: &str,
    keep_open_sec: Option<u64>,
) -> types::Listener {
    let body = types::ListenerCreate {
        network: network.try_into().unwrap(),
        destination: destination.try_into().unwrap(),
        source: vec!["10.0.0.0/8".parse().unwrap()],
        keep_open_sec: keep_open_sec.map(secs),
    };
    app.client.listener_create().body(body).send().await.expect("created").into_inner()
}

#[tokio::test]
async fn create_allocates_a_unique_address_and_sets_the_closing_time() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/extender-service/api/v1/listeners"))
        .json(&serde_json::json!({"network": "tcp", "destination": "ext1/db:5432", "keep_open_sec": 600}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 201);
    let location = response.headers()["location"].to_str().unwrap().to_string();
    let first: types::Listener = response.json().await.unwrap();
    assert_eq!(location, format!("/extender-service/api/v1/listeners/{}", first.id.unwrap()));
    assert_eq!(first.closed_in_sec, Some(secs(600)));
    let second = create(&app, "tcp", "ext1/web:443", None).await;
    let (a, b) = (first.address.unwrap(), second.address.clone().unwrap());
    assert_ne!(a, b, "addresses are unique among open listeners");
    assert!(b.parse::<std::net::SocketAddr>().is_ok(), "IP:port, got {b}");
    assert!(second.author.is_some() && second.created.is_some());

    let viewed =
        app.client.listener_view().id(second.id.unwrap()).send().await.unwrap().into_inner();
    assert_eq!(viewed.destination.as_deref().map(String::as_str), Some("ext1/web:443"));
    assert_eq!(viewed.source, vec!["10.0.0.0/8".parse().unwrap()]);
}

#[tokio::test]
async fn list_sorts_by_every_key_in_both_directions() {
    let app = spawn_app().await;
    create(&app, "tcp", "b/dest:1", Some(100)).await;
    create(&app, "tcp", "c/dest:1", Some(200)).await;
    create(&app, "tcp", "a/dest:1", Some(300)).await;
    let all = app.client.listener_list().send().await.unwrap().into_inner();
    assert_eq!(all.count, 3);
    for key in [
        types::ListenerListSortkey::Id,
        types::ListenerListSortkey::Network,
        types::ListenerListSortkey::Destination,
        types::ListenerListSortkey::Source,
        types::ListenerListSortkey::Address,
        types::ListenerListSortkey::Created,
        types::ListenerListSortkey::Updated,
    ] {
        let field = |l: &types::Listener| -> String {
            let v = serde_json::to_value(l).unwrap();
            v[key.to_string()].to_string()
        };
        let asc = app.client.listener_list().sortkey(key).send().await.unwrap().into_inner().items;
        let asc: Vec<String> = asc.iter().map(field).collect();
        let mut sorted = asc.clone();
        sorted.sort();
        assert_eq!(asc, sorted, "ascending by {key}");
        let desc = app.client.listener_list().sortkey(key).sortdir(SortDir::Desc).send().await;
        let desc: Vec<String> = desc.unwrap().into_inner().items.iter().map(field).collect();
        assert_eq!(desc, asc.iter().rev().cloned().collect::<Vec<_>>(), "descending by {key}");
    }
    let networks: Vec<_> = app
        .client
        .listener_list()
        .sortkey(types::ListenerListSortkey::Network)
        .offset(1)
        .limit(1)
        .send()
        .await
        .unwrap()
        .into_inner()
        .items
        .into_iter()
        .map(|l| l.network.unwrap().to_string())
        .collect();
    assert_eq!(networks, ["tcp"]);
}

#[tokio::test]
async fn a_listener_past_its_time_is_gone_unless_kept_open() {
    let app = spawn_app().await;
    let short = create(&app, "tcp", "e/short:1", Some(60)).await.id.unwrap();
    let kept = create(&app, "tcp", "e/kept:1", Some(60)).await.id.unwrap();
    app.advance_clock(Duration::seconds(30));
    let keep_open = types::Listener { closed_in_sec: Some(secs(3600)), ..Default::default() };
    app.client.listener_update().id(kept).body(keep_open).send().await.unwrap();
    let view = app.client.listener_view().id(short).send().await.unwrap().into_inner();
    assert_eq!(view.closed_in_sec, Some(secs(30)), "closed_in_sec counts down");

    app.advance_clock(Duration::seconds(31));
    let (status, _) = api_error(app.client.listener_view().id(short).send().await);
    assert_eq!(status, 404);
    let list = app.client.listener_list().send().await.unwrap().into_inner();
    assert_eq!(list.count, 1);
    assert_eq!(list.items[0].id, Some(kept));
    assert_eq!(
        list.items[0].destination.as_deref().map(String::as_str),
        Some("e/kept:1"),
        "an update without fields keeps them"
    );
    let (status, _) = api_error(app.client.listener_delete().id(short).send().await);
    assert_eq!(status, 404);
}

#[tokio::test]
async fn update_and_delete() {
    let app = spawn_app().await;
    let id = create(&app, "tcp", "e/old:1", None).await.id.unwrap();
    let body = types::Listener {
        network: Some("tcp".try_into().unwrap()),
        destination: Some("e/new:1".try_into().unwrap()),
        source: vec!["192.0.2.1".parse().unwrap()],
        ..Default::default()
    };
    let response = app.client.listener_update().id(id).body(body).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let view = app.client.listener_view().id(id).send().await.unwrap().into_inner();
    assert_eq!(
        (
            view.network.as_deref().map(String::as_str),
            view.destination.as_deref().map(String::as_str)
        ),
        (Some("tcp"), Some("e/new:1"))
    );
    assert_eq!(view.source, vec!["192.0.2.1".parse().unwrap()]);
    assert!(view.updated > view.created);

    assert_eq!(app.client.listener_delete().id(id).send().await.unwrap().status().as_u16(), 200);
    let (status, _) = api_error(app.client.listener_view().id(id).send().await);
    assert_eq!(status, 404);
    let unknown = uuid::Uuid::new_v4();
    let (status, _) = api_error(
        app.client.listener_update().id(unknown).body(types::Listener::default()).send().await,
    );
    assert_eq!(status, 404);
}

#[tokio::test]
async fn bad_listener_input_is_rejected() {
    let app = spawn_app().await;
    for keep_open_sec in [-5, 0, 365 * 24 * 3600 + 1] {
        let body = serde_json::json!({"network": "tcp", "destination": "e/d:1", "keep_open_sec": keep_open_sec});
        let response = app.http.post(app.url("/extender-service/api/v1/listeners")).json(&body);
        let error = assert_envelope(response.send().await.unwrap(), 400).await;
        assert_eq!(error.property.as_deref(), Some("keep_open_sec"), "{keep_open_sec}");
    }
    // Only TCP is relayed; a destination is PREFIX/HOST:PORT; sources are addresses, networks
    // or host names.
    for (network, destination, source, property) in [
        ("", "e/d:1", "10.0.0.1", "network"),
        ("udp", "e/d:1", "10.0.0.1", "network"),
        ("tcp", "d", "10.0.0.1", "destination"),
        ("tcp", "e/d", "10.0.0.1", "destination"),
        ("tcp", "e/d:0", "10.0.0.1", "destination"),
        ("tcp", "e/d:65536", "10.0.0.1", "destination"),
        ("tcp", "e/d:1", "10.0.0.0/33", "source"),
        ("tcp", "e/d:1", "not a host", "source"),
    ] {
        let body =
            serde_json::json!({"network": network, "destination": destination, "source": [source]});
        let response = app.http.post(app.url("/extender-service/api/v1/listeners")).json(&body);
        let error = assert_envelope(response.send().await.unwrap(), 400).await;
        assert_eq!(error.property.as_deref(), Some(property), "{body}");
    }
    let id = create(&app, "tcp", "e/d:1", None).await.id.unwrap();
    let body = serde_json::json!({"destination": "no-prefix:1"});
    let url = app.url(&format!("/extender-service/api/v1/listeners/{id}"));
    let error = assert_envelope(app.http.put(url).json(&body).send().await.unwrap(), 400).await;
    assert_eq!(error.property.as_deref(), Some("destination"));
    let response = app
        .http
        .get(app.url("/extender-service/api/v1/listeners?sortkey=color"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 400);
}
