//! The load benchmark's baseline: a bare hyper server that reads a POST body and
//! answers 202 with a small JSON body, nothing else. The webhook edge's figure is
//! read against what this does on the same machine in the same run.

use std::net::SocketAddr;

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

async fn accept(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let body = request.into_body().collect().await?.to_bytes();
    let answer = format!("{{\"accepted\":1,\"bytes\":{}}}", body.len());
    let mut response = Response::new(Full::new(Bytes::from(answer)));
    *response.status_mut() = StatusCode::ACCEPTED;
    Ok(response)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let addr: SocketAddr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18099".into())
        .parse()?;
    let listener = TcpListener::bind(addr).await?;
    eprintln!("bare edge listening on {addr}");
    loop {
        let (stream, _) = listener.accept().await?;
        tokio::spawn(async move {
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service_fn(accept))
                .await;
        });
    }
}
