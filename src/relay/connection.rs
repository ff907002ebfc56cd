//! One relayed connection: the source check, the connection to the destination, the relay both
//! ways (half-close kept: each direction ends on its own EOF; each moves through a kernel pipe,
//! see `splice`) and the log line and counters it leaves behind.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::TcpStream;
use tokio::sync::watch;
use uuid::Uuid;

use super::{splice, ListenerPlan};

/// How long connecting to a destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener's counters, kept after it closes.
#[derive(Debug, Default)]
pub struct Traffic {
    pub open: AtomicU64,
    pub total: AtomicU64,
    pub refused: AtomicU64,
    pub failed: AtomicU64,
    pub bytes_to_destination: AtomicU64,
    pub bytes_from_destination: AtomicU64,
}

/// What a relayed connection's task needs from its listener.
pub struct Listener {
    pub id: Uuid,
    pub traffic: Arc<Traffic>,
    pub routes: Arc<BTreeMap<String, String>>,
    pub log: tracing::Dispatch,
}

/// Relays `client` to the plan's destination until both sides are done or `closed` says the
/// listener closed; counts and logs it.
pub async fn relay(
    listener: Arc<Listener>,
    client: TcpStream,
    peer: SocketAddr,
    plan: ListenerPlan,
    mut closed: watch::Receiver<bool>,
) {
    let traffic = &listener.traffic;
    let destination = plan.destination.route(&listener.routes);
    let log = |bytes: (u64, u64), started: Instant, ended: &str| {
        tracing::dispatcher::with_default(&listener.log, || {
            tracing::info!(
                listener = %listener.id,
                client = %peer,
                destination = %format!("{}:{}", destination.0, destination.1),
                bytes_to_destination = bytes.0,
                bytes_from_destination = bytes.1,
                duration_ms = started.elapsed().as_secs_f64() * 1000.0,
                ended,
                "relayed connection"
            );
        });
    };
    let started = Instant::now();
    if !plan.sources.allow(peer.ip()).await {
        traffic.refused.fetch_add(1, Ordering::SeqCst);
        return log((0, 0), started, "client outside the listener's source");
    }
    let server = match connect(destination).await {
        Ok(server) => server,
        Err(why) => {
            traffic.failed.fetch_add(1, Ordering::SeqCst);
            return log((0, 0), started, &format!("destination unreachable: {why}"));
        }
    };
    let _ = (client.set_nodelay(true), server.set_nodelay(true));
    traffic.total.fetch_add(1, Ordering::SeqCst);
    traffic.open.fetch_add(1, Ordering::SeqCst);
    let (mut to_destination, mut from_destination) = (0, 0);
    let both_ways = async {
        tokio::try_join!(
            splice::one_way(&client, &server, &traffic.bytes_to_destination, &mut to_destination),
            splice::one_way(
                &server,
                &client,
                &traffic.bytes_from_destination,
                &mut from_destination
            ),
        )
    };
    let ended = tokio::select! {
        relayed = both_ways => match relayed {
            Ok(_) => "both sides closed".to_string(),
            Err(e) => format!("error: {e}"),
        },
        () = super::closed_signal(&mut closed) => "listener closed".to_string(),
    };
    // Counted before the sockets close, so a client that sees the close sees the count.
    traffic.open.fetch_sub(1, Ordering::SeqCst);
    drop((client, server));
    log((to_destination, from_destination), started, &ended);
}

async fn connect(destination: (&str, u16)) -> Result<TcpStream, String> {
    match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(destination)).await {
        Ok(connected) => connected.map_err(|e| e.to_string()),
        Err(_) => Err("connecting timed out".to_string()),
    }
}
