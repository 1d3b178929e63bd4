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

/// Writes a POST of `length` bytes in 64 KiB pieces with a pause after the first (a
/// partner's sender on a slow link: the answer comes while it is still writing),
/// then reads the answer. `Err` names the step that failed.
async fn post_slowly(addr: SocketAddr, length: usize) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(
            format!("POST / HTTP/1.1\r\nhost: x\r\ncontent-length: {length}\r\n\r\n").as_bytes(),
        )
        .await
        .map_err(|e| format!("head: {e}"))?;
    let piece = vec![b'z'; 64 * 1024];
    let mut written = 0;
    while written < length {
        let n = piece.len().min(length - written);
        stream
            .write_all(&piece[..n])
            .await
            .map_err(|e| format!("body at byte {written}: {e}"))?;
        written += n;
        if written == n {
            // The server has answered by now.
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
    let mut answer = vec![0; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .map_err(|_| "no answer in 5 s".to_owned())?
        .map_err(|e| format!("answer: {e}"))?;
    Ok(String::from_utf8_lossy(&answer[..read]).into_owned())
}

#[tokio::test]
async fn a_sender_still_writing_when_refused_reads_its_413() {
    // Declared over the limit: answered from the head, and what the sender goes on
    // writing is read and dropped, so it reads the answer instead of a reset.
    let (addr, _stop) = server(64 * 1024).await;
    let answer = post_slowly(addr, 1_500_000)
        .await
        .expect("the sender got through");
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("65536"),
        "the 413 names the limit: {answer}"
    );
}

#[tokio::test]
async fn a_refusal_before_the_body_lets_the_sender_finish_and_read_it() {
    // A handler that refuses from the head alone (a rate limit, unknown credentials)
    // and never reads the body, as ingest's webhook route does.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_stop, shutdown) = Shutdown::new();
    let handler = move |request: Request<Incoming>| async move {
        let (parts, body) = request.into_parts();
        let _unread = Unread::new(body, &parts.headers);
        let mut response = Problem::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "slow down")
            .into_response();
        // As ingest says of a connection whose body it did not read.
        response
            .headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        response
    };
    tokio::spawn(serve(listener, handler, shutdown, Duration::from_secs(1)));
    let answer = post_slowly(addr, 1_500_000)
        .await
        .expect("the sender got through");
    assert!(answer.starts_with("HTTP/1.1 429"), "{answer}");
}

#[tokio::test]
async fn what_is_drained_has_a_bound() {
    // Past the drain's bound the connection is closed as before: a sender of 64 MiB
    // is not read whole to be told no.
    let (addr, _stop) = server(1024).await;
    let outcome = post_slowly(addr, DRAIN_MAX_BYTES as usize * 4).await;
    assert!(outcome.is_err(), "{outcome:?}");
}
