//! Closes the server's connections that have not sent a single byte within the first-byte
//! timeout, or at once while more connections than the cap are open.
//!
//! dropshot owns the accept loop and gives each connection to hyper-util, whose HTTP-version
//! sniffing waits for the first bytes with no timeout of its own (hyper's 30 s header timeout
//! starts only after it). A connection that never sent anything held a file, and held off a
//! graceful shutdown, forever. dropshot offers no hook into its accept loop, so this watches
//! the sockets from the side: on a timer, it looks at each socket of the process, and a
//! connection to the server's own address that the kernel says has received nothing for
//! longer than the timeout is shut down, which hyper sees as the client leaving. No request
//! pays for this; a pass costs a few system calls per open file.
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

/// How often to look, for a timeout: often enough that a silent connection goes at most a
/// quarter of the timeout late, and never more than once every 25 ms.
fn period(timeout: Duration) -> Duration {
    (timeout / 4).clamp(Duration::from_millis(25), Duration::from_secs(1))
}

/// What the watcher enforces.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a connection may send nothing.
    pub first_byte_timeout: Duration,
    /// Past this many open connections, silent ones are closed at once.
    pub max_connections: usize,
}

/// What one pass saw and did.
#[derive(Debug, Default)]
struct Pass {
    open: usize,
    closed: usize,
}

/// Closes the silent connections to `server`, logging to `log`, for as long as `alive`
/// (something the server holds) lives.
pub fn watch<T: Send + Sync + 'static>(
    server: SocketAddr,
    limits: Limits,
    alive: Weak<T>,
    log: tracing::Dispatch,
) {
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period(limits.first_byte_timeout));
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut over_cap = false;
        loop {
            ticks.tick().await;
            if alive.strong_count() == 0 {
                return;
            }
            let wait = if over_cap { Duration::ZERO } else { limits.first_byte_timeout };
            let pass = tokio::task::spawn_blocking(move || close_silent(server, wait))
                .await
                .unwrap_or_default();
            tracing::dispatcher::with_default(&log, || {
                if pass.closed > 0 {
                    let timeout = limits.first_byte_timeout.as_millis();
                    let why = if over_cap {
                        "over the connection cap".to_string()
                    } else {
                        format!("within {timeout} ms")
                    };
                    tracing::warn!("closed {} connection(s) that sent nothing {why}", pass.closed);
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
    close_silent(server, Duration::MAX).open
}

/// One pass over the process's descriptors: how many connections to `server` are open, and
/// how many of those that received nothing for `wait` it shut down.
fn close_silent(server: SocketAddr, wait: Duration) -> Pass {
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return Pass::default() };
    let descriptors = entries.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<RawFd>().ok());
    let mut pass = Pass::default();
    for fd in descriptors {
        match close_if_silent(fd, server, wait) {
            None => {}
            Some(closed) => {
                pass.open += 1;
                pass.closed += usize::from(closed);
            }
        }
    }
    pass
}

/// `None` if `fd` is no connection to `server`; else whether it was silent for `wait` and so
/// shut down.
fn close_if_silent(fd: RawFd, server: SocketAddr, wait: Duration) -> Option<bool> {
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
    let silent_for = Duration::from_millis(info.tcpi_last_data_recv.into());
    let silent = info.tcpi_bytes_received == 0 && silent_for >= wait;
    Some(silent && socket.shutdown(Shutdown::Both).is_ok())
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
