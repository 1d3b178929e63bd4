//! A TCP forwarder a test can close and open again: an outage of one server (the
//! shared ClickHouse) for one process under test, without stopping the server the
//! other tests use. Closed, it cuts the connections it carries and drops new ones
//! as soon as they are accepted, which a client sees as a server going away.

use std::net::SocketAddr;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct TcpGate {
    pub port: u16,
    open: watch::Sender<bool>,
    accepting: tokio::task::JoinHandle<()>,
}

impl TcpGate {
    /// Forwards a port of its own on 127.0.0.1 to `target`; open at first.
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a gate");
        let port = listener.local_addr().expect("the gate's address").port();
        let (open, watching) = watch::channel(true);
        let accepting = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !*watching.borrow() {
                    continue; // dropped: the client sees the connection reset
                }
                let mut closed = watching.clone();
                tokio::spawn(async move {
                    let Ok(mut outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let mut inbound = inbound;
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
                        _ = closed.wait_for(|open| !*open) => {}
                    }
                });
            }
        });
        Self {
            port,
            open,
            accepting,
        }
    }

    /// `http://127.0.0.1:PORT`, for a client of an HTTP server behind the gate.
    pub fn http_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every connection through the gate and refuses new ones.
    pub fn close(&self) {
        self.open.send_replace(false);
    }

    pub fn open(&self) {
        self.open.send_replace(true);
    }
}

impl Drop for TcpGate {
    fn drop(&mut self) {
        self.close();
        self.accepting.abort();
    }
}
