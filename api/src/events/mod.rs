//! `GET /api/events`: Server-Sent Events of calls (`call.created`, `call.updated`)
//! and imports (`import.progress`) as they are published on the enriched topic.
//! Parameters: `client_id`, `account`, and `last_event_id` (or the `Last-Event-ID`
//! header a reconnecting `EventSource` sends).
//!
//! Event ids are positions in the enriched topic: `partition:next-offset` for every
//! partition (`0:118,1:97,2:130`), the position just after the event. Any api
//! instance can resume from one: a reconnecting client gets exactly the events after
//! the one it last saw, none twice, as long as the topic still holds them (its
//! retention); when it no longer does, the stream starts with a `reset` event.
//!
//! Live clients share one tailing consumer per instance through a bounded
//! broadcast channel. A resuming client is served from the ring of recent events
//! (`ring`) when its id is recent, else by the one shared catch-up reader
//! (`catch_up`), which hands it to the live feed once caught up: no client gets a
//! consumer of its own. Either way a client that falls behind by more than the
//! buffer gets a `dropped` event (with the id to resume from) and is disconnected,
//! so slow clients cannot grow server memory. How many streams one account may hold
//! is `limits.sse_connections`.

mod catch_up;
mod ring;
mod sent_versions;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE};
use http::{HeaderValue, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use rdkafka::message::Message;
use rdkafka::Offset;
use runtime::http::{Body, Problem};
use runtime::kafka::{assigned_consumer, spawn_tail, ConsumerError, KafkaConfig};

pub use self::catch_up::CatchUpLimits;
use self::catch_up::{CatchUp, Item, Refused, Request};
use self::ring::Ring;
use self::sent_versions::{SentVersions, LOOK_BACK, REMEMBERED};
use runtime::shutdown::Shutdown;
use serde::Deserialize;
use tokio::sync::{broadcast, mpsc};

use crate::query::parse;

/// One event, pre-rendered once for every client.
#[derive(Debug)]
pub struct CallEvent {
    client_id: String,
    account: String,
    /// The position after this event, to resume from.
    id: String,
    /// Where it sits in the topic.
    partition: i32,
    offset: i64,
    /// A call event's call id and row version, to send each version once.
    call: Option<(String, u64)>,
    frame: Bytes,
}

/// Where a reader stands in the enriched topic: the next offset per partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Positions(BTreeMap<i32, i64>);

/// Longest `Last-Event-ID` accepted.
const MAX_ID_LEN: usize = 8 * 1024;

impl Positions {
    pub fn encode(&self) -> String {
        self.0
            .iter()
            .map(|(p, o)| format!("{p}:{o}"))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn parse(text: &str) -> Option<Self> {
        if text.len() > MAX_ID_LEN {
            return None;
        }
        text.split(',')
            .map(|pair| {
                let (p, o) = pair.trim().split_once(':')?;
                let (p, o) = (p.parse::<i32>().ok()?, o.parse::<i64>().ok()?);
                (p >= 0 && o >= 0).then_some((p, o))
            })
            .collect::<Option<BTreeMap<_, _>>>()
            .filter(|m| !m.is_empty())
            .map(Self)
    }

    fn advance(&mut self, partition: i32, offset: i64) {
        self.0.insert(partition, offset + 1);
    }
}

#[derive(Clone)]
pub struct EventHub {
    shared: Arc<HubShared>,
    heartbeat: Duration,
    buffer: usize,
    catch_up: CatchUp,
}

/// What the hub's reader writes and resumes read: the live feed and the ring of
/// recent events, changed together under the ring's lock so a client handed from
/// one to the other misses nothing and sees nothing twice.
pub struct HubShared {
    /// Every event, for admin streams.
    sender: broadcast::Sender<Arc<CallEvent>>,
    /// Each account's events, for its streams: a client falls behind by its own
    /// account's events only, never because another account's flood filled the
    /// feed it shares.
    by_account: Mutex<HashMap<String, broadcast::Sender<Arc<CallEvent>>>>,
    buffer: usize,
    ring: Mutex<Ring>,
}

impl HubShared {
    fn lock_ring(&self) -> std::sync::MutexGuard<'_, Ring> {
        self.ring
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_accounts(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Arc<CallEvent>>>> {
        self.by_account
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The live feed for `account` (every account's for `None`). Called with the
    /// ring's lock held when a client moves from the ring to the feed.
    fn subscribe(&self, account: Option<&str>) -> broadcast::Receiver<Arc<CallEvent>> {
        match account {
            None => self.sender.subscribe(),
            Some(account) => self
                .lock_accounts()
                .entry(account.to_owned())
                .or_insert_with(|| broadcast::channel(self.buffer).0)
                .subscribe(),
        }
    }

    /// Sends to the admin feed and the event's account's feed (dropped when nobody
    /// of that account listens any more).
    fn publish(&self, event: Arc<CallEvent>) {
        let mut accounts = self.lock_accounts();
        if let Some(feed) = accounts.get(&event.account) {
            if feed.send(event.clone()).is_err() {
                accounts.remove(&event.account);
            }
        }
        drop(accounts);
        // No subscribers is fine: nobody is watching.
        let _ = self.sender.send(event);
    }

    /// Events the slowest live client has yet to take: a feed's length is what its
    /// slowest receiver has not received. Read at a scrape, not per event.
    fn slowest_client(&self) -> usize {
        let accounts = self.lock_accounts();
        let slowest = accounts.values().map(|feed| feed.len()).max().unwrap_or(0);
        slowest.max(self.sender.len())
    }
}

/// How much a hub keeps for resumes and how many may wait for the catch-up reader.
#[derive(Debug, Clone, Copy)]
pub struct ResumeLimits {
    pub ring_events: usize,
    pub ring_bytes: usize,
    pub catch_up: CatchUpLimits,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    client_id: Option<String>,
    account: Option<String>,
    last_event_id: Option<String>,
}

impl EventsQuery {
    fn wants(&self, event: &CallEvent) -> bool {
        self.client_id
            .as_ref()
            .is_none_or(|c| *c == event.client_id)
            && self.account.as_ref().is_none_or(|a| *a == event.account)
    }
}

impl EventHub {
    /// Sets `api_sse_slowest_client_events`: call before rendering `/metrics`.
    pub fn report_slowest_client(&self) {
        metrics::gauge!(crate::metric_names::API_SSE_SLOWEST_CLIENT_EVENTS)
            .set(self.shared.slowest_client() as f64);
    }

    /// Starts tailing the enriched topic from its current end: events published
    /// after this returns reach live subscribers.
    pub async fn start(
        kafka: &KafkaConfig,
        buffer: usize,
        heartbeat: Duration,
        resumes: ResumeLimits,
        workers: &runtime::workers::Workers,
        shutdown: Shutdown,
    ) -> Result<Self, ConsumerError> {
        let topic = kafka.topics().enriched;
        let (consumer, marks) = assigned_consumer(
            &kafka.live(),
            "api-events",
            &topic,
            Duration::from_secs(10),
            |m| Offset::Offset(m.high),
        )
        .await?;
        let mut positions = Positions(marks.iter().map(|m| (m.partition, m.high)).collect());
        let low = Positions(marks.iter().map(|m| (m.partition, m.low)).collect());
        let (sender, _) = broadcast::channel(buffer);
        let shared = Arc::new(HubShared {
            sender,
            by_account: Mutex::default(),
            buffer,
            ring: Mutex::new(Ring::new(
                &positions,
                &low,
                resumes.ring_events,
                resumes.ring_bytes,
            )),
        });
        let catch_up = CatchUp::start(
            kafka,
            shared.clone(),
            resumes.catch_up,
            workers,
            shutdown.clone(),
        )
        .await?;
        let hub = Self {
            shared: shared.clone(),
            heartbeat,
            buffer,
            catch_up,
        };
        spawn_tail(consumer, shutdown, "sse", move |message| {
            let (partition, offset) = (message.partition(), message.offset());
            positions.advance(partition, offset);
            if let Some(event) = render(&positions.encode(), partition, offset, message.payload()) {
                let event = Arc::new(event);
                let mut ring = shared.lock_ring();
                ring.push(event.clone());
                shared.publish(event);
                drop(ring);
                metrics::counter!(crate::metric_names::API_SSE_EVENTS_TOTAL).increment(1);
            }
        });
        Ok(hub)
    }

    /// A stream for one client; `last_event_id` (the header) resumes after it.
    pub async fn subscribe(
        &self,
        query: Option<&str>,
        last_event_id: Option<&str>,
        scope: &runtime::access::Scope,
    ) -> Result<Response<Body>, Problem> {
        let mut filter: EventsQuery = parse(query)?;
        scope.check_account(filter.account.as_deref())?;
        if let Some(mine) = scope.account() {
            filter.account = Some(mine.to_owned());
        }
        let resume = filter
            .last_event_id
            .as_deref()
            .or(last_event_id)
            .map(|id| {
                Positions::parse(id).ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "bad_last_event_id",
                        "Last-Event-ID must be an event id this stream sent (partition:offset,...)",
                    )
                })
            })
            .transpose()?;
        let preface = String::from("retry: 3000\n: connected\n\n");
        let mut sent = SentVersions::new(REMEMBERED);
        let source = match resume {
            None => Source::Live(Feed::new(
                self.shared.subscribe(filter.account.as_deref()),
                Positions::default(),
            )),
            Some(from) => {
                let (source, had) = self.resume(from, filter_copy(&filter))?;
                for event in had.iter().filter(|e| filter.wants(e)) {
                    sent.note(event);
                }
                source
            }
        };
        metrics::gauge!(crate::metric_names::API_SSE_CLIENTS).increment(1.0);
        let mut ticks = tokio::time::interval(self.heartbeat);
        ticks.reset();
        let client = SseClient {
            source,
            ticks,
            filter,
            preface: Some(Bytes::from(preface)),
            ended: false,
            last_id: None,
            sent,
            _gauge: ClientGauge,
        };
        let frames = futures::stream::unfold(client, |mut client| async move {
            let frame = client.next_frame().await?;
            Some((Ok::<_, Infallible>(Frame::data(frame)), client))
        });
        let mut response = Response::new(StreamBody::new(frames).boxed());
        *response.status_mut() = StatusCode::OK;
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
        Ok(response)
    }

    /// Where a resuming client's events come from: the ring, when it holds every
    /// event after `from` and the look back before it; else the shared catch-up
    /// reader (503 when too many resumes wait for it already).
    /// With the ring, the events before `from` it holds: what the client had, so its
    /// stream knows which call versions it sent (`sent_versions`).
    fn resume(
        &self,
        from: Positions,
        filter: EventsQuery,
    ) -> Result<(Source, Vec<Arc<CallEvent>>), Problem> {
        metrics::counter!(crate::metric_names::API_SSE_RESUMES_TOTAL).increment(1);
        {
            let ring = self.shared.lock_ring();
            if ring.covers(&from) && ring.holds_look_back(&from, LOOK_BACK) {
                let pending: VecDeque<Arc<CallEvent>> = ring.after(&from).into();
                let had = ring.before(&from);
                let live = Feed::new(self.shared.subscribe(filter.account.as_deref()), from);
                return Ok((Source::Replay { pending, live }, had));
            }
        }
        let (sender, receiver) = mpsc::channel(self.buffer);
        let overflowed = Arc::new(AtomicBool::new(false));
        let account = filter.account.clone();
        let request = Request {
            from,
            filter,
            sender,
            overflowed: overflowed.clone(),
            account,
        };
        match self.catch_up.submit(request) {
            Ok(()) => {}
            Err(Refused::Queue) => {
                return Err(Problem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "resumes_queued",
                    "too many event streams are catching up on this instance; reconnect in a few seconds",
                )
                .retry_after(3))
            }
            Err(Refused::Account(limit)) => {
                return Err(Problem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "account_limit",
                    format!(
                        "this account has {limit} event streams catching up already (limits.sse_catch_ups = {limit}); reconnect when one has caught up"
                    ),
                )
                .with_detail("limit", "limits.sse_catch_ups")
                .with_detail("value", limit)
                .retry_after(3))
            }
        }
        Ok((
            Source::Resumed {
                receiver,
                overflowed,
            },
            Vec::new(),
        ))
    }
}

fn filter_copy(filter: &EventsQuery) -> EventsQuery {
    EventsQuery {
        client_id: filter.client_id.clone(),
        account: filter.account.clone(),
        last_event_id: None,
    }
}

enum Source {
    Live(Feed),
    /// From the ring, then live.
    Replay {
        pending: VecDeque<Arc<CallEvent>>,
        live: Feed,
    },
    /// From the catch-up reader, then live (when it says so).
    Resumed {
        receiver: mpsc::Receiver<Item>,
        overflowed: Arc<AtomicBool>,
    },
}

/// One connected SSE client: where its events come from, its filter, its heartbeat.
struct SseClient {
    source: Source,
    ticks: tokio::time::Interval,
    filter: EventsQuery,
    preface: Option<Bytes>,
    ended: bool,
    /// The id of the last event sent, for the `dropped` event.
    last_id: Option<String>,
    sent: SentVersions,
    _gauge: ClientGauge,
}

enum Next {
    Event(Arc<CallEvent>),
    /// Call versions before a resuming client's id: it had them; only noted.
    Had(Vec<(String, u64)>),
    Reset(&'static str),
    Behind(u64),
    Closed,
}

impl SseClient {
    /// The next bytes to send, or `None` to end the response.
    async fn next_frame(&mut self) -> Option<Bytes> {
        if self.ended {
            return None;
        }
        if let Some(preface) = self.preface.take() {
            return Some(preface);
        }
        loop {
            let next = tokio::select! {
                _ = self.ticks.tick() => return Some(Bytes::from_static(b": heartbeat\n\n")),
                next = next_event(&mut self.source) => next,
            };
            match next {
                Next::Event(event) if self.filter.wants(&event) => {
                    if let Some((call, version)) = &event.call {
                        if !self.sent.is_new(call, *version) {
                            metrics::counter!(crate::metric_names::API_SSE_REPEATS_SKIPPED_TOTAL)
                                .increment(1);
                            continue;
                        }
                    }
                    self.last_id = Some(event.id.clone());
                    return Some(event.frame.clone());
                }
                Next::Event(_) => continue,
                Next::Had(versions) => {
                    for (call, version) in &versions {
                        self.sent.is_new(call, *version);
                    }
                    continue;
                }
                Next::Reset(reason) => {
                    return Some(Bytes::from(format!(
                        "event: reset\ndata: {{\"reason\":\"{reason}\"}}\n\n"
                    )))
                }
                Next::Behind(missed) => {
                    self.ended = true;
                    metrics::counter!(crate::metric_names::API_SSE_DROPPED_CLIENTS_TOTAL)
                        .increment(1);
                    let resume = self
                        .last_id
                        .as_deref()
                        .map(|id| format!(",\"resume_from\":\"{id}\""))
                        .unwrap_or_default();
                    return Some(Bytes::from(format!(
                        "event: dropped\ndata: {{\"reason\":\"client too slow\",\"missed\":{missed}{resume}}}\n\n"
                    )));
                }
                Next::Closed => return None,
            }
        }
    }
}

async fn next_event(source: &mut Source) -> Next {
    loop {
        match source {
            Source::Live(receiver) => return live(receiver).await,
            Source::Replay { pending, live: rx } => match pending.pop_front() {
                Some(event) => return Next::Event(event),
                None => return live(rx).await,
            },
            Source::Resumed {
                receiver,
                overflowed,
            } => match receiver.recv().await {
                Some(Item::Event(event)) => return Next::Event(event),
                Some(Item::Had(versions)) => return Next::Had(versions),
                Some(Item::Reset(reason)) => return Next::Reset(reason),
                Some(Item::Live(feed)) => *source = Source::Live(feed),
                None if overflowed.load(Ordering::SeqCst) => return Next::Behind(1),
                None => return Next::Closed,
            },
        }
    }
}

/// The live feed as one client takes it: without what the client had before it
/// joined. A resumed client may be further on than this instance's reader (it read
/// another instance, or the catch-up reader got ahead): the feed's events before
/// the client's position are ones it has seen.
pub struct Feed {
    receiver: broadcast::Receiver<Arc<CallEvent>>,
    /// Per partition, the offset the client's events go on from.
    from: Positions,
}

impl Feed {
    fn new(receiver: broadcast::Receiver<Arc<CallEvent>>, from: Positions) -> Self {
        Self { receiver, from }
    }

    fn seen(&self, event: &CallEvent) -> bool {
        self.from
            .0
            .get(&event.partition)
            .is_some_and(|at| event.offset < *at)
    }
}

async fn live(feed: &mut Feed) -> Next {
    loop {
        match feed.receiver.recv().await {
            Ok(event) if feed.seen(&event) => continue,
            Ok(event) => return Next::Event(event),
            Err(broadcast::error::RecvError::Lagged(missed)) => return Next::Behind(missed),
            Err(broadcast::error::RecvError::Closed) => return Next::Closed,
        }
    }
}

/// Decrements the client gauge when a stream is dropped.
struct ClientGauge;

impl Drop for ClientGauge {
    fn drop(&mut self) {
        metrics::gauge!(crate::metric_names::API_SSE_CLIENTS).decrement(1.0);
    }
}

fn render(id: &str, partition: i32, offset: i64, payload: Option<&[u8]>) -> Option<CallEvent> {
    #[derive(Deserialize)]
    struct Scope {
        client_id: String,
        account: String,
        /// `call.created`, `call.updated` or `import.progress`, set by the writer.
        #[serde(default = "created")]
        event: String,
        /// A call's id and row version (call events only; other events may use
        /// these names for anything).
        id: Option<serde_json::Value>,
        version: Option<serde_json::Value>,
    }
    fn created() -> String {
        "call.created".to_owned()
    }
    let payload = payload?;
    let scope: Scope = match serde_json::from_slice(payload) {
        Ok(scope) => scope,
        Err(error) => {
            tracing::warn!(%error, id, "enriched message is not an event; skipped");
            return None;
        }
    };
    let data = std::str::from_utf8(payload).ok()?;
    // SSE data lines cannot contain raw newlines; compact JSON has none, but be sure.
    let data = data.replace('\n', " ");
    let event = match scope.event.as_str() {
        "call.updated" => "call.updated",
        "import.progress" => "import.progress",
        "integration.error" => "integration.error",
        _ => "call.created",
    };
    let call = match (event, scope.id, scope.version.and_then(|v| v.as_u64())) {
        ("call.created" | "call.updated", Some(serde_json::Value::String(call)), Some(version)) => {
            Some((call, version))
        }
        _ => None,
    };
    Some(CallEvent {
        client_id: scope.client_id,
        account: scope.account,
        id: id.to_owned(),
        partition,
        offset,
        call,
        frame: Bytes::from(format!("id: {id}\nevent: {event}\ndata: {data}\n\n")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_one_sse_frame_with_its_position_as_id() {
        let event = render(
            "0:5,1:9,2:42",
            2,
            41,
            Some(br#"{"client_id":"arroyo","account":"acme","x":1}"#),
        )
        .unwrap();
        let frame = std::str::from_utf8(&event.frame).unwrap();
        assert_eq!(frame, "id: 0:5,1:9,2:42\nevent: call.created\ndata: {\"client_id\":\"arroyo\",\"account\":\"acme\",\"x\":1}\n\n");
        let update = render(
            "2:43",
            2,
            42,
            Some(br#"{"client_id":"arroyo","account":"acme","event":"call.updated"}"#),
        )
        .unwrap();
        assert!(std::str::from_utf8(&update.frame)
            .unwrap()
            .starts_with("id: 2:43\nevent: call.updated\n"));
        assert!(render("0:0", 0, 0, Some(b"not json")).is_none());
        assert!(render("0:0", 0, 0, None).is_none());
    }

    #[test]
    fn positions_round_trip_and_refuse_junk() {
        let mut positions = Positions::default();
        positions.advance(2, 41);
        positions.advance(0, 4);
        assert_eq!(positions.encode(), "0:5,2:42");
        assert_eq!(Positions::parse("0:5,2:42"), Some(positions));
        for junk in ["", "2-41", "0:5,x:1", "-1:3", "0:-3", &"0:1,".repeat(3000)] {
            assert_eq!(Positions::parse(junk), None, "{junk:.20}");
        }
    }

    /// A client that resumes on an instance whose reader is behind its id: the live
    /// feed's events before the id are not sent again (seen in the suite: a second
    /// api that had not yet read the event the client last saw sent it twice).
    #[tokio::test]
    async fn a_live_feed_skips_what_the_client_saw_before_it_joined() {
        let (sender, receiver) = broadcast::channel(16);
        let mut feed = Feed::new(receiver, Positions::parse("0:0,1:1,2:0").unwrap());
        for (partition, offset) in [(2, 0), (1, 0), (1, 1), (0, 0)] {
            let id = format!("{partition}:{}", offset + 1);
            let payload = br#"{"client_id":"arroyo","account":"acme"}"#;
            sender
                .send(Arc::new(
                    render(&id, partition, offset, Some(payload)).unwrap(),
                ))
                .unwrap();
        }
        let mut got = Vec::new();
        for _ in 0..3 {
            match live(&mut feed).await {
                Next::Event(event) => got.push((event.partition, event.offset)),
                _ => panic!("an event"),
            }
        }
        assert_eq!(got, [(2, 0), (1, 1), (0, 0)], "(1, 0) was seen already");
    }
    /// A call version the processor announced twice (a batch decided again after a
    /// rebalance) reaches a stream once; a later version of that call, another
    /// call, and events that are not calls' pass.
    #[tokio::test]
    async fn a_stream_sends_each_call_version_once() {
        let (sender, receiver) = broadcast::channel(16);
        let payloads: [&[u8]; 6] = [
            br#"{"client_id":"arroyo","account":"acme","id":"c1","version":7}"#,
            br#"{"client_id":"arroyo","account":"acme","id":"c2","version":7}"#,
            br#"{"client_id":"arroyo","account":"acme","id":"c1","version":7}"#,
            br#"{"client_id":"arroyo","account":"acme","id":"c1","version":9,"event":"call.updated"}"#,
            br#"{"client_id":"arroyo","account":"acme","event":"import.progress","id":"imp","version":1}"#,
            br#"{"client_id":"arroyo","account":"acme","event":"import.progress","id":"imp","version":1}"#,
        ];
        for (offset, payload) in payloads.iter().enumerate() {
            let offset = offset as i64;
            let id = format!("0:{}", offset + 1);
            sender
                .send(Arc::new(render(&id, 0, offset, Some(payload)).unwrap()))
                .unwrap();
        }
        let mut ticks = tokio::time::interval(Duration::from_secs(3600));
        ticks.reset();
        metrics::gauge!(crate::metric_names::API_SSE_CLIENTS).increment(1.0);
        let mut client = SseClient {
            source: Source::Live(Feed::new(receiver, Positions::default())),
            ticks,
            filter: EventsQuery::default(),
            preface: None,
            ended: false,
            last_id: None,
            sent: SentVersions::new(REMEMBERED),
            _gauge: ClientGauge,
        };
        let mut ids = Vec::new();
        for _ in 0..5 {
            let frame = client.next_frame().await.unwrap();
            let frame = std::str::from_utf8(&frame).unwrap().to_owned();
            ids.push(frame.lines().next().unwrap().to_owned());
        }
        assert_eq!(
            ids,
            ["id: 0:1", "id: 0:2", "id: 0:4", "id: 0:5", "id: 0:6"],
            "0:3 repeats c1's version 7"
        );
    }

    /// `api_sse_slowest_client_events` reads the feed furthest behind: an account's
    /// client that has taken nothing, not the admin client that keeps up.
    #[tokio::test]
    async fn the_slowest_client_is_the_feed_furthest_behind() {
        let (sender, _) = broadcast::channel(16);
        let shared = HubShared {
            sender,
            by_account: Mutex::default(),
            buffer: 16,
            ring: Mutex::new(Ring::new(
                &Positions::default(),
                &Positions::default(),
                16,
                1 << 20,
            )),
        };
        let mut admin = shared.subscribe(None);
        let _idle = shared.subscribe(Some("acme"));
        let payload = br#"{"client_id":"arroyo","account":"acme"}"#;
        for offset in 0..5 {
            let id = format!("0:{}", offset + 1);
            shared.publish(Arc::new(render(&id, 0, offset, Some(payload)).unwrap()));
        }
        for _ in 0..5 {
            admin.recv().await.unwrap();
        }
        assert_eq!(shared.slowest_client(), 5, "acme's client took nothing");
    }
}
