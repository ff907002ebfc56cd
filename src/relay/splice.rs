//! One direction of a relayed connection, moved with splice(2): from one socket into a kernel pipe
//! and from the pipe into the other socket. The bytes never enter this process (no copy through
//! user space, no buffer in its memory): half the CPU time per relayed byte of a user-space copy,
//! and a small process whatever the connections carry. The pipe is the direction's only buffer:
//! nothing more is read until what it holds is written, so a slow reader slows its writer
//! (back-pressure). Linux only, as the project is.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::net::Shutdown;
use rustix::pipe::{PipeFlags, SpliceFlags};
use tokio::io::Interest;
use tokio::net::TcpStream;

/// The pipe size a bulk direction grows to: Linux's default `pipe-max-size`. With the default
/// 64 KiB pipe each hand-off between the two sockets moved too little, and the relay reached
/// 73% of a direct connection's throughput; 1 MiB pipes reached 80-83% (README, Benchmarks).
/// A pipe starts at the default size and grows only once a read fills it, because Linux
/// counts a pipe's whole size against its user's `pipe-user-pages-soft` (64 MiB for an
/// unprivileged user): chatty connections keep small pipes and only bulk transfers take big
/// ones. Where growing is refused, the pipe keeps the size it has and moves less at a time.
const BULK_PIPE_BYTES: usize = 1024 * 1024;

/// Relays what `from` sends to `to` until `from` ends its side, then ends `to`'s (a half-close:
/// the other direction goes on); counts each byte read from `from` into `total` and `count`.
pub async fn one_way(
    from: &TcpStream,
    to: &TcpStream,
    total: &AtomicU64,
    count: &mut u64,
) -> io::Result<()> {
    // Pipes are created non-blocking, so a full or empty pipe is EAGAIN, never a blocked task.
    let (pipe_out, pipe_in) = rustix::pipe::pipe_with(PipeFlags::CLOEXEC | PipeFlags::NONBLOCK)?;
    let mut capacity = rustix::pipe::fcntl_getpipe_size(&pipe_in)?;
    loop {
        let read =
            when_ready(from, Interest::READABLE, || splice(from, &pipe_in, capacity)).await?;
        if read == 0 {
            break;
        }
        if read == capacity && capacity < BULK_PIPE_BYTES {
            // Best effort: a refusal leaves the pipe as it is.
            capacity =
                rustix::pipe::fcntl_setpipe_size(&pipe_in, BULK_PIPE_BYTES).unwrap_or(capacity);
        }
        total.fetch_add(read as u64, Ordering::Relaxed);
        *count += read as u64;
        let mut left = read;
        while left > 0 {
            let written =
                when_ready(to, Interest::WRITABLE, || splice(&pipe_out, to, left)).await?;
            if written == 0 {
                return Err(io::ErrorKind::WriteZero.into());
            }
            left -= written;
        }
    }
    Ok(rustix::net::shutdown(to, Shutdown::Write)?)
}

fn splice(from: impl rustix::fd::AsFd, to: impl rustix::fd::AsFd, len: usize) -> io::Result<usize> {
    Ok(rustix::pipe::splice(from, None, to, None, len, SpliceFlags::NONBLOCK)?)
}

/// Runs `io` on `stream` once tokio says it is ready for `interest`, again after each
/// would-block (which clears that readiness). A would-block here is always the socket's: the
/// pipe is empty when a read fills it and holds the bytes a write sends.
async fn when_ready(
    stream: &TcpStream,
    interest: Interest,
    mut io: impl FnMut() -> io::Result<usize>,
) -> io::Result<usize> {
    loop {
        stream.ready(interest).await?;
        match stream.try_io(interest, &mut io) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            done => return done,
        }
    }
}
