//! An open-loop HTTP load: POSTs one body at a fixed rate over a fixed number of
//! keep-alive connections, and times each request from when it was *due*, not from
//! when a connection was free to send it. wrk waits for each answer before sending
//! the next request on a connection (closed loop), so its percentiles are at whatever
//! load the server sustains; this measures the latency at a chosen load, queueing
//! included (benches/load/webhook_edge.sh, "at half the load").
//!
//!   open_loop HOST:PORT PATH BODY_FILE RATE SECONDS CONNECTIONS [CONTENT_TYPE]
//!
//! Prints one line: `sent answered_2xx other achieved_rate p50_ms p95_ms p99_ms max_ms`.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1;
use hyper::Request;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, Mutex};
use tokio::time::Instant;

struct Outcome {
    latency: Duration,
    success: bool,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |n: usize, name: &str| args.get(n).cloned().context(name.to_owned());
    let addr = arg(1, "HOST:PORT")?;
    let path = arg(2, "PATH")?;
    let body = Bytes::from(std::fs::read(arg(3, "BODY_FILE")?)?);
    let rate: f64 = arg(4, "RATE")?.parse()?;
    let seconds: f64 = arg(5, "SECONDS")?.parse()?;
    let connections: usize = arg(6, "CONNECTIONS")?.parse()?;
    let content_type = args
        .get(7)
        .cloned()
        .unwrap_or_else(|| "application/json".to_owned());

    // Due times go to whichever connection is free first.
    let (due_tx, due_rx) = mpsc::channel::<Instant>(connections * 4);
    let due_rx = Arc::new(Mutex::new(due_rx));
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let stream = TcpStream::connect(&addr)
            .await
            .with_context(|| format!("connecting to {addr}"))?;
        stream.set_nodelay(true)?;
        let (mut sender, connection) = http1::handshake(TokioIo::new(stream)).await?;
        tokio::spawn(connection);
        let (due_rx, done_tx, body, path, addr, content_type) = (
            due_rx.clone(),
            done_tx.clone(),
            body.clone(),
            path.clone(),
            addr.clone(),
            content_type.clone(),
        );
        workers.push(tokio::spawn(async move {
            loop {
                let Some(due) = due_rx.lock().await.recv().await else {
                    return;
                };
                let request = Request::post(path.as_str())
                    .header("host", addr.as_str())
                    .header("content-type", content_type.as_str())
                    .body(Full::new(body.clone()))
                    .expect("a valid request");
                let success = match sender.send_request(request).await {
                    Ok(response) => {
                        let ok = response.status().is_success();
                        ok && response.into_body().collect().await.is_ok()
                    }
                    Err(_) => false,
                };
                let outcome = Outcome {
                    latency: due.elapsed(),
                    success,
                };
                if done_tx.send(outcome).is_err() || !success && sender.ready().await.is_err() {
                    return;
                }
            }
        }));
    }
    drop(done_tx);

    let total = (rate * seconds).round() as u64;
    let started = Instant::now();
    for n in 0..total {
        let due = started + Duration::from_secs_f64(n as f64 / rate);
        tokio::time::sleep_until(due).await;
        due_tx.send(due).await?;
    }
    drop(due_tx);
    let mut latencies_ms = Vec::with_capacity(total as usize);
    let (mut answered, mut other) = (0u64, 0u64);
    while let Some(outcome) = done_rx.recv().await {
        if outcome.success {
            answered += 1;
            latencies_ms.push(outcome.latency.as_secs_f64() * 1000.0);
        } else {
            other += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    latencies_ms.sort_by(f64::total_cmp);
    let at = |q: f64| {
        latencies_ms
            .get(
                ((latencies_ms.len() as f64 * q) as usize)
                    .min(latencies_ms.len().saturating_sub(1)),
            )
            .copied()
            .unwrap_or(f64::NAN)
    };
    println!(
        "{total} {answered} {other} {:.0} {:.2} {:.2} {:.2} {:.2}",
        answered as f64 / elapsed,
        at(0.50),
        at(0.95),
        at(0.99),
        latencies_ms.last().copied().unwrap_or(f64::NAN)
    );
    Ok(())
}
