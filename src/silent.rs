//! Closes the server's connections that have gone quiet for too long: one that has not sent a
//! single byte within the first-byte timeout (or at once while more connections than the cap
//! are open), one that waits for a next request for longer than the idle timeout, and one
//! whose request stopped arriving, or went unanswered, for longer than the header timeout.
//!
//! dropshot owns the accept loop and gives each connection to hyper-util, whose HTTP-version
//! sniffing waits for the first bytes with no timeout of its own, and to hyper, whose header
//! timeout (which also covers the wait for a next request on a kept-alive connection) is a
//! fixed 30 s that dropshot 0.18 offers no way to set; hyper times out neither a body nor an
//! answer. dropshot offers no hook into its accept loop either, so this watches the sockets
//! from the side: on a timer, it looks at each socket of the process, asks the kernel
//! (`TCP_INFO`) how long ago the connection last received and last sent data, and shuts down
//! those quiet for longer than their timeout, which hyper sees as the client leaving. No
//! request pays for this; a pass costs a few system calls per open file.
//!
//! Who sent data last tells which timeout applies. Nothing received yet: the first-byte
//! timeout. The server sent last (its answer, so the connection waits for the client's next
//! request): the idle timeout, counted from that answer. The client sent last (a request head
//! or body is arriving, or its request is being handled): the header timeout, counted from
//! the last byte received; so it also bounds how long a request may go unanswered after its
//! last byte. The kernel counts in clock ticks, so data sent and received within one tick
//! look simultaneous; the server then counts as having sent last (its answer came within the
//! tick of the request) unless it has never sent anything (the kernel dates a connection's
//! last sending from its accept, so a first request that arrived within the tick of the
//! accept would look answered). Under TLS, handshake records are data both ways and follow
//! the same rules: a handshake that stalls is closed after the idle or the header timeout,
//! by who is to speak.
//!
//! The same pass counts the server's connections. dropshot accepts every connection, so the
//! cap cannot refuse one; past it, the pass says so in the log and the next pass closes every
//! silent connection without waiting for its timeout, so a flood of connections that say
//! nothing goes first, and clients that talk keep being served.
//!
//! Each socket is looked at through a duplicate of its descriptor, so the socket shut down is
//! the one that was looked at, even if its descriptor number was reused in between.

use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::{FromRawFd, RawFd};
use std::sync::Weak;
use std::time::Duration;

/// How often to look: often enough that a quiet connection goes at most a quarter of the
/// shortest timeout late, and never more than once every 25 ms.
fn period(limits: &Limits) -> Duration {
    let shortest = limits.first_byte_timeout.min(limits.idle_timeout).min(limits.header_timeout);
    (shortest / 4).clamp(Duration::from_millis(25), Duration::from_secs(1))
}

/// What the watcher enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a connection may send nothing.
    pub first_byte_timeout: Duration,
    /// How long a connection may wait for its next request once its last one was answered.
    pub idle_timeout: Duration,
    /// How long a connection may receive nothing while the client is sending a request or
    /// waiting for its answer.
    pub header_timeout: Duration,
    /// Past this many open connections, silent ones are closed at once.
    pub max_connections: usize,
}

/// How long a connection may be quiet, by who is to speak.
#[derive(Debug, Clone, Copy)]
struct Waits {
    silent: Duration,
    idle: Duration,
    stalled: Duration,
}

impl Waits {
    const NEVER: Waits =
        Waits { silent: Duration::MAX, idle: Duration::MAX, stalled: Duration::MAX };
}

/// Why a connection was shut down.
#[derive(Debug, Clone, Copy)]
enum Quiet {
    /// It never sent a byte.
    Silent,
    /// Its last request was answered and no next one came.
    Idle,
    /// Its request stopped arriving, or was not answered.
    Stalled,
}

/// What one pass saw and did.
#[derive(Debug, Default)]
struct Pass {
    open: usize,
    silent: usize,
    idle: usize,
    stalled: usize,
}

/// Closes the quiet connections to `server`, logging to `log`, for as long as `alive`
/// (something the server holds) lives.
pub fn watch<T: Send + Sync + 'static>(
    server: SocketAddr,
    limits: Limits,
    alive: Weak<T>,
    log: tracing::Dispatch,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period(&limits));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut over_cap = false;
        loop {
            ticks.tick().await;
            if alive.strong_count() == 0 {
                return;
            }
            let waits = Waits {
                silent: if over_cap { Duration::ZERO } else { limits.first_byte_timeout },
                idle: limits.idle_timeout,
                stalled: limits.header_timeout,
            };
            let pass = tokio::task::spawn_blocking(move || close_quiet(server, waits))
                .await
                .unwrap_or_default();
            tracing::dispatcher::with_default(&log, || {
                if pass.silent > 0 {
                    let timeout = limits.first_byte_timeout.as_millis();
                    let why = if over_cap {
                        "over the connection cap".to_string()
                    } else {
                        format!("within {timeout} ms")
                    };
                    tracing::warn!("closed {} connection(s) that sent nothing {why}", pass.silent);
                }
                if pass.idle > 0 {
                    tracing::debug!(
                        "closed {} idle connection(s): no next request within {} ms of the \
                         last answer",
                        pass.idle,
                        limits.idle_timeout.as_millis()
                    );
                }
                if pass.stalled > 0 {
                    tracing::warn!(
                        "closed {} stalled connection(s): nothing received for {} ms in the \
                         middle of a request or while it waited for its answer",
                        pass.stalled,
                        limits.header_timeout.as_millis()
                    );
                }
                over_cap = pass.open > limits.max_connections;
                if over_cap {
                    tracing::warn!(
                        "connection cap ({}) reached: {} connections open; those that have sent \
                         nothing are closed at once",
                        limits.max_connections,
                        pass.open
                    );
                }
            });
        }
    });
}

/// How many connections to `server` are open (a pass that closes none).
pub fn count_open(server: SocketAddr) -> usize {
    close_quiet(server, Waits::NEVER).open
}

/// One pass over the process's descriptors: how many connections to `server` are open, and
/// how many of those, quiet for longer than `waits` allows, it shut down.
fn close_quiet(server: SocketAddr, waits: Waits) -> Pass {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Pass::default() };
    let descriptors = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok());
    let mut pass = Pass::default();
    for (socket, info) in descriptors.filter_map(|fd| connection(fd, server)) {
        pass.open += 1;
        let Some(quiet) = overdue(&info, waits) else { continue };
        if socket.shutdown(Shutdown::Both).is_ok() {
            match quiet {
                Quiet::Silent => pass.silent += 1,
                Quiet::Idle => pass.idle += 1,
                Quiet::Stalled => pass.stalled += 1,
            }
        }
    }
    pass
}

/// The socket behind `fd` and what the kernel says of it, if it is a connection to `server`.
fn connection(fd: RawFd, server: SocketAddr) -> Option<(TcpStream, libc::tcp_info)> {
    // SAFETY: dup only reads the descriptor table; the duplicate is owned by `socket` alone
    // (closed when it drops), whatever kind of file it turns out to be.
    let duplicate = unsafe { libc::dup(fd) };
    if duplicate < 0 {
        return None;
    }
    let socket = unsafe { TcpStream::from_raw_fd(duplicate) };
    // A connection accepted on the server's address (any local one, when the server listens
    // on all of them); the listening socket itself has no peer.
    let accepted = socket.local_addr().is_ok_and(|local| {
        local.port() == server.port() && (server.ip().is_unspecified() || local.ip() == server.ip())
    });
    if !accepted || socket.peer_addr().is_err() {
        return None;
    }
    let info = tcp_info(&socket)?;
    Some((socket, info))
}

/// Whether a connection the kernel describes as `info` has been quiet for longer than `waits`
/// allows, and how.
fn overdue(info: &libc::tcp_info, waits: Waits) -> Option<Quiet> {
    let since_received = Duration::from_millis(info.tcpi_last_data_recv.into());
    let since_sent = Duration::from_millis(info.tcpi_last_data_sent.into());
    let (quiet, since, wait) = if info.tcpi_bytes_received == 0 {
        (Quiet::Silent, since_received, waits.silent)
    } else if info.tcpi_bytes_sent > 0 && since_sent <= since_received {
        (Quiet::Idle, since_sent, waits.idle)
    } else {
        (Quiet::Stalled, since_received, waits.stalled)
    };
    (since >= wait).then_some(quiet)
}

fn tcp_info(socket: &TcpStream) -> Option<libc::tcp_info> {
    use std::os::fd::AsRawFd;
    // SAFETY: tcp_info is plain data; getsockopt writes at most `length` bytes into it.
    unsafe {
        let mut info: libc::tcp_info = std::mem::zeroed();
        let mut length = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
        let pointer = (&mut info as *mut libc::tcp_info).cast();
        let status = libc::getsockopt(
            socket.as_raw_fd(),
            libc::SOL_TCP,
            libc::TCP_INFO,
            pointer,
            &mut length,
        );
        (status == 0).then_some(info)
    }
}
