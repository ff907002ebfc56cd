//! The load side of the relay benchmark in `scripts/bench`: a destination server and the
//! clients that measure a listener against a direct connection to that destination. `cargo
//! bench` alone just builds it. Commands (each prints one JSON line when done):
//!
//! - `relay serve`: a destination on 127.0.0.1; prints `destination listening on PORT`. A
//!   connection's first byte picks its mode: `E` echoes, `S` counts what it reads until EOF and
//!   answers the count (8 bytes, little-endian).
//! - `relay throughput ADDR SECONDS`: one connection sending for SECONDS to a sink; MB/s of
//!   what arrived.
//! - `relay latency ADDR N`: N connections one after another, each timed from connect to its
//!   first echoed byte; p50 and p99 in ms.
//! - `relay hold ADDR N`: N concurrent echoing connections, each echoing 3 messages; prints
//!   `holding N` while they stay open, closes them at a line on standard input.

use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 256 * 1024;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    match arg(0).as_str() {
        "serve" => serve().await,
        "throughput" => throughput(&arg(1), arg(2).parse().expect("SECONDS")).await,
        "latency" => latency(&arg(1), arg(2).parse().expect("N")).await,
        "hold" => hold(&arg(1), arg(2).parse().expect("N")).await,
        _ => eprintln!("relay serve | throughput ADDR SECONDS | latency ADDR N | hold ADDR N"),
    }
}

async fn serve() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    println!("destination listening on {}", listener.local_addr().expect("address").port());
    while let Ok((mut stream, _)) = listener.accept().await {
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            let mut mode = [0; 1];
            if stream.read_exact(&mut mode).await.is_err() {
                return;
            }
            if mode[0] == b'S' {
                let mut buffer = vec![0; CHUNK];
                let mut count = 0u64;
                while let Ok(n @ 1..) = stream.read(&mut buffer).await {
                    count += n as u64;
                }
                let _ = stream.write_all(&count.to_le_bytes()).await;
            } else {
                let (mut read, mut write) = stream.split();
                let _ = tokio::io::copy(&mut read, &mut write).await;
            }
        });
    }
}

async fn connect(address: &str, mode: u8) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.expect("connect");
    stream.set_nodelay(true).expect("nodelay");
    stream.write_all(&[mode]).await.expect("mode");
    stream
}

async fn throughput(address: &str, seconds: u64) {
    let mut stream = connect(address, b'S').await;
    let chunk = vec![0x5a; CHUNK];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(seconds) {
        stream.write_all(&chunk).await.expect("send");
    }
    stream.shutdown().await.expect("half-close");
    let mut count = [0; 8];
    stream.read_exact(&mut count).await.expect("the count");
    let mb = u64::from_le_bytes(count) as f64 / 1e6;
    println!("{{\"mb_per_s\": {}}}", mb / started.elapsed().as_secs_f64());
}

async fn latency(address: &str, n: usize) {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        let mut stream = connect(address, b'E').await;
        stream.write_all(b"x").await.expect("send");
        let mut byte = [0; 1];
        stream.read_exact(&mut byte).await.expect("echo");
        times.push(started.elapsed().as_secs_f64() * 1000.0);
    }
    times.sort_by(f64::total_cmp);
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    println!("{{\"p50_ms\": {}, \"p99_ms\": {}}}", at(0.5), at(0.99));
}

async fn hold(address: &str, n: usize) {
    // Opened 100 at a time: a burst of a thousand connects overflows the accept queues.
    let mut streams = Vec::with_capacity(n);
    for batch in (0..n).collect::<Vec<_>>().chunks(100) {
        let mut tasks = Vec::with_capacity(batch.len());
        for _ in batch {
            let address = address.to_string();
            tasks.push(tokio::spawn(async move {
                let mut stream = connect(&address, b'E').await;
                let message = [7u8; 1024];
                let mut back = [0u8; 1024];
                for _ in 0..3 {
                    stream.write_all(&message).await.expect("send");
                    stream.read_exact(&mut back).await.expect("echo");
                }
                stream
            }));
        }
        for task in tasks {
            streams.push(task.await.expect("a connection"));
        }
    }
    println!("holding {}", streams.len());
    let mut line = String::new();
    let _ = tokio::io::BufReader::new(tokio::io::stdin()).read_line(&mut line).await;
    println!("{{\"held\": {}}}", streams.len());
}
