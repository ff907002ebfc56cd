//! Extender listeners made real on this machine: each open listener is a TCP socket bound on
//! the configured host, whose accepted connections are relayed to the listener's destination
//! until the listener closes (its time is up on the server's clock, or it is deleted), which
//! also closes every connection it relays. Owned by the server; knows nothing of HTTP or of
//! the store: callers say which listeners exist and with what plan.

mod connection;
mod rules;
mod splice;

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;
use uuid::Uuid;

use crate::clock::Clock;
use connection::{Listener, Traffic};
pub use rules::{Destination, Sources};

/// Where listeners bind and where their destinations lead.
#[derive(Debug, Clone)]
pub struct RelayConfig {
    /// The host every listener binds on (loopback unless the operator asks otherwise).
    pub host: IpAddr,
    /// Listener ports are taken from this range, lowest free first.
    pub ports: RangeInclusive<u16>,
    /// Destination prefix -> host that prefix's connections go to instead of the
    /// destination's own host (the port stays).
    pub routes: BTreeMap<String, String>,
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self { host: IpAddr::from([127, 0, 0, 1]), ports: 40000..=40999, routes: BTreeMap::new() }
    }
}

/// What a listener does with the connections it accepts, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerPlan {
    pub destination: Destination,
    pub sources: Sources,
    pub closes_at: DateTime<Utc>,
}

/// A listener's counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrafficCounts {
    /// Connections being relayed now.
    pub open: u64,
    /// Connections relayed (connected to the destination) in all.
    pub total: u64,
    /// Clients closed at once for being outside the listener's sources.
    pub refused: u64,
    /// Clients closed because the destination could not be reached.
    pub failed: u64,
    pub bytes_to_destination: u64,
    pub bytes_from_destination: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error("no free listener port is left in {0:?}")]
    NoFreePort(RangeInclusive<u16>),
    #[error("binding {address}: {error}")]
    Bind { address: SocketAddr, error: std::io::Error },
    /// The process or the system is out of what a socket takes (files, buffers, memory): no
    /// fault of the request, and over once something is freed.
    #[error("binding {address}: out of resources: {error}")]
    OutOfResources { address: SocketAddr, error: std::io::Error },
    /// The server is stopping: it binds nothing any more.
    #[error("the server is shutting down")]
    ShutDown,
}

struct Running {
    plan: watch::Sender<ListenerPlan>,
    closed: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

/// The open listeners, and the counters of every listener this server ran.
pub struct Relays {
    config: RelayConfig,
    routes: Arc<BTreeMap<String, String>>,
    clock: Clock,
    log: tracing::Dispatch,
    running: Mutex<HashMap<Uuid, Running>>,
    traffic: Mutex<BTreeMap<Uuid, Arc<Traffic>>>,
    /// Set by [`Relays::shut_down`]: nothing is bound or started after it, so the ports are
    /// free for whoever starts next (a listener that follows the store would bind again).
    shut: std::sync::atomic::AtomicBool,
}

impl Relays {
    /// Relays logging each connection into `log`, listeners expiring on `clock`.
    pub fn new(config: RelayConfig, clock: Clock, log: tracing::Dispatch) -> Self {
        let routes = Arc::new(config.routes.clone());
        Self {
            config,
            routes,
            clock,
            log,
            running: Mutex::default(),
            traffic: Mutex::default(),
            shut: Default::default(),
        }
    }

    /// Binds the lowest free port of the range.
    pub fn bind_free(&self) -> Result<std::net::TcpListener, RelayError> {
        for port in self.config.ports.clone() {
            match self.bind(SocketAddr::new(self.config.host, port)) {
                Err(RelayError::Bind { error, .. })
                    if error.kind() == std::io::ErrorKind::AddrInUse => {}
                bound => return bound,
            }
        }
        Err(RelayError::NoFreePort(self.config.ports.clone()))
    }

    /// Binds `address` (a listener's, again, after a restart).
    pub fn bind(&self, address: SocketAddr) -> Result<std::net::TcpListener, RelayError> {
        if self.shut.load(Ordering::SeqCst) {
            return Err(RelayError::ShutDown);
        }
        let bind = || {
            let socket = std::net::TcpListener::bind(address)?;
            socket.set_nonblocking(true)?;
            Ok(socket)
        };
        bind().map_err(|error: std::io::Error| match error.raw_os_error() {
            Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                RelayError::OutOfResources { address, error }
            }
            _ => RelayError::Bind { address, error },
        })
    }

    /// Starts relaying the connections `socket` accepts, as `plan` says, until it closes.
    pub fn start(&self, id: Uuid, socket: std::net::TcpListener, plan: ListenerPlan) {
        if self.shut.load(Ordering::SeqCst) {
            return;
        }
        let traffic = self.lock_traffic().entry(id).or_default().clone();
        let listener =
            Arc::new(Listener { id, traffic, routes: self.routes.clone(), log: self.log.clone() });
        let (plan, plan_changes) = watch::channel(plan);
        let (closed, closed_changes) = watch::channel(false);
        let clock = self.clock.clone();
        let task = tokio::spawn(async move {
            match TcpListener::from_std(socket) {
                Ok(socket) => serve(listener, socket, clock, plan_changes, closed_changes).await,
                Err(e) => log_error(&listener, &e),
            }
        });
        let mut running = self.lock_running();
        running.retain(|_, r| !r.task.is_finished());
        running.insert(id, Running { plan, closed, task });
    }

    /// Changes what a running listener does with new connections (and until when it runs).
    pub fn update(&self, id: Uuid, plan: ListenerPlan) {
        if let Some(running) = self.lock_running().get(&id) {
            running.plan.send_replace(plan);
        }
    }

    /// Whether the listener `id` is running.
    pub fn is_running(&self, id: Uuid) -> bool {
        self.lock_running().get(&id).is_some_and(|r| !r.task.is_finished())
    }

    /// The listeners running now.
    pub fn running(&self) -> Vec<Uuid> {
        self.lock_running()
            .iter()
            .filter(|(_, r)| !r.task.is_finished())
            .map(|(id, _)| *id)
            .collect()
    }

    /// Closes a listener and every connection it relays; returns once its port is free.
    pub async fn close(&self, id: Uuid) {
        let running = self.lock_running().remove(&id);
        if let Some(running) = running {
            running.closed.send_replace(true);
            let _ = running.task.await;
        }
    }

    /// Closes every listener for good: nothing is bound or started from now on.
    pub async fn shut_down(&self) {
        self.shut.store(true, Ordering::SeqCst);
        self.close_all_but(&[]).await;
    }

    /// Closes every listener but those in `keep`.
    pub async fn close_all_but(&self, keep: &[Uuid]) {
        let ids: Vec<Uuid> =
            self.lock_running().keys().filter(|id| !keep.contains(id)).copied().collect();
        for id in ids {
            self.close(id).await;
        }
    }

    /// Logs a listener problem the caller found (one it could not reopen, say).
    pub fn warn(&self, message: &str) {
        tracing::dispatcher::with_default(&self.log, || tracing::warn!("{message}"));
    }

    /// Every listener's counters, by listener id.
    pub fn traffic(&self) -> Vec<(Uuid, TrafficCounts)> {
        let load = |counter: &std::sync::atomic::AtomicU64| counter.load(Ordering::SeqCst);
        let traffic = self.lock_traffic();
        traffic
            .iter()
            .map(|(id, t)| {
                let counts = TrafficCounts {
                    open: load(&t.open),
                    total: load(&t.total),
                    refused: load(&t.refused),
                    failed: load(&t.failed),
                    bytes_to_destination: load(&t.bytes_to_destination),
                    bytes_from_destination: load(&t.bytes_from_destination),
                };
                (*id, counts)
            })
            .collect()
    }

    fn lock_running(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Running>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn lock_traffic(&self) -> std::sync::MutexGuard<'_, BTreeMap<Uuid, Arc<Traffic>>> {
        self.traffic.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Returns once `closed` says closed, or its sender is gone.
async fn closed_signal(closed: &mut watch::Receiver<bool>) {
    let _ = closed.wait_for(|closed| *closed).await;
}

fn log_error(listener: &Listener, error: &dyn std::fmt::Display) {
    tracing::dispatcher::with_default(&listener.log, || {
        tracing::warn!(listener = %listener.id, %error, "listener");
    });
}

/// A listener's accept loop: it ends when the listener closes, then waits for its connections
/// (which close too) so that its port is free when it returns.
async fn serve(
    listener: Arc<Listener>,
    socket: TcpListener,
    clock: Clock,
    mut plan: watch::Receiver<ListenerPlan>,
    mut closed: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    // Closes the relayed connections, whatever closes the listener.
    let (closing, closing_changes) = watch::channel(false);
    // Made again only when the plan changes: not for every accepted connection, whose first
    // byte would otherwise wait for a timer to be armed and disarmed.
    let mut expiry = Box::pin(clock.reached(plan.borrow().closes_at));
    loop {
        let replanned = tokio::select! {
            () = &mut expiry => break,
            changed = plan.changed() => if changed.is_err() { break } else { true },
            () = closed_signal(&mut closed) => break,
            accepted = socket.accept() => {
                match accepted {
                    Ok((client, peer)) => {
                        let plan = plan.borrow().clone();
                        let closing = closing_changes.clone();
                        connections.spawn(connection::relay(listener.clone(), client, peer, plan, closing));
                    }
                    Err(e) => {
                        // Out of file descriptors, say: give the connections time to end.
                        log_error(&listener, &e);
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
                false
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => false,
        };
        if replanned {
            expiry = Box::pin(clock.reached(plan.borrow().closes_at));
        }
    }
    drop(socket);
    closing.send_replace(true);
    while connections.join_next().await.is_some() {}
}
