//! A body over the limit: clients sending it side by side each read the 413 that
//! names the limit (not a connection cut under them), and one that declares far more
//! than the limit is answered from its head, without its body being read.

use super::*;
use std::collections::BTreeMap;

/// Serves `read_body` with `limit` on a free port; returns its address.
async fn server(limit: usize) -> (SocketAddr, crate::shutdown::ShutdownTrigger) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (trigger, shutdown) = Shutdown::new();
    let handler = move |request: Request<Incoming>| async move {
        match read_body(request, limit, Duration::from_secs(10)).await {
            Ok(bytes) => json(StatusCode::OK, &bytes.len()),
            Err(problem) => problem.into_response(),
        }
    };
    tokio::spawn(serve(listener, handler, shutdown, Duration::from_secs(1)));
    (addr, trigger)
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413_not_cut_off() {
    let (addr, _stop) = server(64 * 1024).await;
    let client = reqwest::Client::new();
    let body = vec![b'x'; 4 * 1024 * 1024];
    // Eight senders side by side, as a partner's workers would be.
    let senders = (0..8).map(|_| {
        let (client, body) = (client.clone(), body.clone());
        tokio::spawn(async move {
            let mut answers: Vec<String> = Vec::new();
            for _ in 0..5 {
                answers.push(
                    match client
                        .post(format!("http://{addr}/"))
                        .body(body.clone())
                        .send()
                        .await
                    {
                        Ok(response) => {
                            let status = response.status().as_u16();
                            let text = response.text().await.unwrap_or_default();
                            assert!(
                                status != 413 || text.contains("65536"),
                                "the 413 names the limit: {text}"
                            );
                            status.to_string()
                        }
                        Err(error) => format!("no answer: {error:?}"),
                    },
                );
            }
            answers
        })
    });
    let mut answers: BTreeMap<String, usize> = BTreeMap::new();
    for sender in senders {
        for answer in sender.await.unwrap() {
            *answers.entry(answer).or_default() += 1;
        }
    }
    assert_eq!(
        answers,
        BTreeMap::from([("413".to_owned(), 40)]),
        "every oversized body gets its 413"
    );
    // Under the limit still works.
    let small = client
        .post(format!("http://{addr}/"))
        .body(vec![b'y'; 1000])
        .send()
        .await
        .unwrap();
    assert_eq!(small.status(), 200);
}

#[tokio::test]
async fn a_body_far_over_the_bound_is_not_read_whole() {
    // Declared far past what is drained: refused at once, the connection closed,
    // whatever the client sees (what is never read costs nothing).
    let (addr, _stop) = server(1024).await;
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let declared = 1024 * 1024 * 1024_u64;
    stream
        .write_all(
            format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {declared}\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered without the body")
        .unwrap();
    let head = String::from_utf8_lossy(&answer[..read]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}
