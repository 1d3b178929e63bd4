//! The load benchmarks' broker baseline: what a bare rdkafka client gets from the same
//! broker, with no HTTP and none of our code, in the same run as the figure it is read
//! against.
//!
//!   raw_kafka produce BROKERS TOPIC SECONDS CONCURRENCY [BATCH]
//!                                     # prints records/s, p50 and p99 ack ms, records, bytes
//!   raw_kafka consume BROKERS TOPIC RECORDS [FETCH_WAIT_MS]
//!                                     # prints records/s and records, from the topic's start
//!   raw_kafka stamps BROKERS TOPIC PREFIX
//!                                     # prints each record's timestamp (ms) and the first
//!                                     # string in its payload starting with PREFIX
//!
//! `produce` sends what ingest sends for the load scripts' webhook record: the same raw
//! envelope (so the same size), keyed by caller, with the producer settings of
//! `runtime::kafka::AckedProducer` (its `TUNING_DEFAULTS` and `ACKNOWLEDGED`: acks=all,
//! idempotence, lz4, linger 5 ms, one request in flight).
//! CONCURRENCY tasks each send BATCH records (1 by default) and wait for every
//! acknowledgement before the next, as CONCURRENCY webhook connections with BATCH
//! records per request do; the latency is the batch's.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use rdkafka::Message;
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

/// The body of `benches/load/post.lua`, wrapped as ingest wraps it.
fn envelope(n: u64) -> Vec<u8> {
    let body = format!(
        r#"{{"call":{{"id":"load_{n}","caller":{{"number":"4155552671","zip":"94103"}},"tracking_number":"8885550100","started_at":"2026-11-20T14:03:22-08:00","duration":"4:12","payout":"$45.00","campaign":{{"name":"Auto CA"}},"tags":["auto"]}}}}"#
    );
    let envelope = schemas::RawEnvelope {
        raw_id: uuid::Uuid::new_v4(),
        client_id: schemas::ClientId::parse("arroyo").expect("a valid client id"),
        source: schemas::Source::Webhook,
        received_at: chrono::Utc::now(),
        idempotency_key: format!("{:016x}", n.wrapping_mul(0x9e37_79b9_7f4a_7c15)),
        integration_version: 1,
        payload: serde_json::value::RawValue::from_string(body).expect("valid JSON"),
    };
    envelope.to_json()
}

async fn produce(
    brokers: &str,
    topic: &str,
    seconds: u64,
    concurrency: u64,
    batch: u64,
) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("message.timeout.ms", "30000");
    // ingest's producer settings, from where ingest takes them.
    for (key, value) in runtime::kafka::TUNING_DEFAULTS
        .iter()
        .chain(runtime::kafka::ACKNOWLEDGED)
    {
        config.set(*key, *value);
    }
    // A run trying a producer setting gives it to ingest (its `kafka.properties`) and
    // to this baseline alike: `CM_BENCH_PRODUCER_PROPS="linger.ms=1 batch.size=65536"`.
    for setting in std::env::var("CM_BENCH_PRODUCER_PROPS")
        .unwrap_or_default()
        .split_whitespace()
    {
        let Some((key, value)) = setting.split_once('=') else {
            bail!("CM_BENCH_PRODUCER_PROPS: {setting:?} is not key=value");
        };
        config.set(key, value);
    }
    let producer: FutureProducer = config.create().context("creating the producer")?;
    let size = envelope(0).len();
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = (0..concurrency)
        .map(|task| {
            let producer = producer.clone();
            let topic = topic.to_owned();
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = task << 32;
                while Instant::now() < deadline {
                    let payloads: Vec<(String, Vec<u8>)> = (0..batch)
                        .map(|_| {
                            n += 1;
                            // The keys ingest gives the wrk scripts' 9,000 callers
                            // (post_callers.lua, post_batch.lua).
                            (
                                format!("acme-leads|+1415555{:04}", 1000 + n % 9000),
                                envelope(n),
                            )
                        })
                        .collect();
                    let sent = Instant::now();
                    let sends = payloads.iter().map(|(key, payload)| {
                        producer.send(
                            FutureRecord::to(&topic).key(key).payload(payload),
                            Timeout::Never,
                        )
                    });
                    for result in futures::future::join_all(sends).await {
                        result
                            .map_err(|(error, _)| anyhow::anyhow!("not acknowledged: {error}"))?;
                    }
                    latencies.push(sent.elapsed());
                }
                anyhow::Ok(latencies)
            })
        })
        .collect();
    let mut latencies: Vec<Duration> = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize].as_secs_f64() * 1000.0;
    let sent = latencies.len() as u64 * batch;
    println!(
        "{:.0} {:.2} {:.2} {} {}",
        sent as f64 / elapsed.as_secs_f64(),
        at(0.50),
        at(0.99),
        sent,
        size
    );
    Ok(())
}

async fn consume(
    brokers: &str,
    topic: &str,
    records: u64,
    fetch_wait_ms: Option<u64>,
) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("raw-kafka-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false");
    if let Some(wait) = fetch_wait_ms {
        config.set("fetch.wait.max.ms", wait.to_string());
    }
    let consumer = from_the_start(&config, topic)?;
    let mut seen = 0_u64;
    let mut started = None;
    while seen < records {
        match tokio::time::timeout(Duration::from_secs(30), consumer.recv()).await {
            Ok(Ok(_)) => {
                // Timed from the first record: connecting is not the broker's rate.
                started.get_or_insert_with(Instant::now);
                seen += 1;
            }
            Ok(Err(error)) => bail!("consuming: {error}"),
            Err(_) => bail!("no record for 30 s after {seen} of {records}"),
        }
    }
    let elapsed = started.map(|s| s.elapsed()).unwrap_or_default();
    println!("{:.0} {}", seen as f64 / elapsed.as_secs_f64(), seen);
    Ok(())
}

/// A consumer with every partition of `topic` assigned by hand from its start, as
/// the api's readers do: no group to join (a subscribing consumer got nothing from
/// tansu within 30 s).
fn from_the_start(config: &ClientConfig, topic: &str) -> anyhow::Result<StreamConsumer> {
    let consumer: StreamConsumer = config.create().context("creating the consumer")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .context("reading the topic's metadata")?;
    let mut assignment = TopicPartitionList::new();
    for partition in metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions())
    {
        assignment.add_partition_offset(topic, partition.id(), Offset::Beginning)?;
    }
    if assignment.count() == 0 {
        bail!("topic {topic} has no partitions");
    }
    consumer.assign(&assignment)?;
    Ok(consumer)
}

/// Every record of `topic` whose payload holds a string starting with `prefix`:
/// prints its Kafka timestamp (ms) and that string, one per line, until no record
/// came for 5 s.
async fn stamps(brokers: &str, topic: &str, prefix: &str) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("raw-kafka-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false");
    let consumer = from_the_start(&config, topic)?;
    let needle = format!("\"{prefix}");
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    while let Ok(received) = tokio::time::timeout(Duration::from_secs(5), consumer.recv()).await {
        let message = received.context("consuming")?;
        let Some(payload) = message.payload().and_then(|p| std::str::from_utf8(p).ok()) else {
            continue;
        };
        let Some(at) = payload.find(&needle) else {
            continue;
        };
        let rest = &payload[at + 1..];
        let id = &rest[..rest.find('"').unwrap_or(rest.len())];
        let stamp = message.timestamp().to_millis().unwrap_or(0);
        writeln!(out, "{stamp}\t{id}")?;
    }
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let number = |i: usize, name: &str| -> anyhow::Result<u64> {
        args.get(i)
            .with_context(|| format!("missing {name}"))?
            .parse()
            .with_context(|| format!("{name} must be a number"))
    };
    match (args.get(1).map(String::as_str), args.get(2), args.get(3)) {
        (Some("produce"), Some(brokers), Some(topic)) => {
            let concurrency = number(5, "CONCURRENCY")?.max(1);
            let batch = if args.len() > 6 { number(6, "BATCH")?.max(1) } else { 1 };
            produce(brokers, topic, number(4, "SECONDS")?, concurrency, batch).await
        }
        (Some("consume"), Some(brokers), Some(topic)) => {
            let fetch_wait = if args.len() > 5 { Some(number(5, "FETCH_WAIT_MS")?) } else { None };
            consume(brokers, topic, number(4, "RECORDS")?, fetch_wait).await
        }
        (Some("stamps"), Some(brokers), Some(topic)) => {
            let prefix = args.get(4).context("missing PREFIX")?;
            stamps(brokers, topic, prefix).await
        }
        _ => bail!(
            "usage: raw_kafka produce BROKERS TOPIC SECONDS CONCURRENCY [BATCH] | consume BROKERS TOPIC RECORDS [FETCH_WAIT_MS] | stamps BROKERS TOPIC PREFIX"
        ),
    }
}
