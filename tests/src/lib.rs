//! Harness for tests against the real stack: a tansu broker and a ClickHouse server
//! started by `deploy/test.sh` (addresses in `CM_TEST_BROKERS` and
//! `CM_TEST_CLICKHOUSE_URL`), and the real `ingest`, `processor` and `api` binaries
//! started as child processes.
//!
//! Every test gets its own topic prefix, consumer groups and ClickHouse database, so
//! tests run in parallel on one broker and one server without seeing each other.

pub mod fake_http;
pub mod neighbours;
pub mod slow_sender;
pub mod sse;
pub mod tcp_gate;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use runtime::clickhouse::ClickHouseConfig;
use runtime::kafka::KafkaConfig;

static NEXT_ENV: AtomicU32 = AtomicU32::new(0);

/// One isolated environment on the shared broker and ClickHouse.
pub struct TestEnv {
    pub name: String,
    pub kafka: KafkaConfig,
    pub clickhouse: ClickHouseConfig,
}

impl TestEnv {
    /// Topics created, migrations applied, the sample integrations published.
    pub async fn new(name: &str) -> Self {
        let brokers = std::env::var("CM_TEST_BROKERS").unwrap_or_else(|_| "127.0.0.1:19092".into());
        Self::with_brokers(name, brokers).await
    }

    /// As [`TestEnv::new`], on a broker of the test's own (see [`PrivateBroker`]).
    pub async fn with_brokers(name: &str, brokers: String) -> Self {
        let clickhouse_url = std::env::var("CM_TEST_CLICKHOUSE_URL")
            .unwrap_or_else(|_| "http://127.0.0.1:18123".into());
        let id = format!(
            "t{}x{}{}",
            std::process::id(),
            NEXT_ENV.fetch_add(1, Ordering::SeqCst),
            name.replace('-', "_")
        );
        let kafka = KafkaConfig::new(brokers, format!("{id}."));
        // The test ClickHouse has users with passwords (deploy/test.sh exports them).
        let clickhouse = ClickHouseConfig {
            url: clickhouse_url,
            database: id.clone(),
            user: "callmatrix_writer".into(),
            password: std::env::var("CM_TEST_CLICKHOUSE_WRITER_PASSWORD").unwrap_or_default(),
            cluster: None,
        };
        let unreachable = |what: &str, error: String| -> ! {
            panic!("{what} is not reachable ({error}). Integration tests need the test stack: run `deploy/test.sh`, which starts it and runs the suite.")
        };
        if let Err(e) =
            runtime::clickhouse::ping(&clickhouse.server_client(), Duration::from_secs(5)).await
        {
            unreachable("ClickHouse", e);
        }
        if let Err(e) = cmctl::create_topics(&kafka, 3, &cmctl::TopicRetention::default()).await {
            unreachable("the Kafka broker", e.to_string());
        }
        cmctl::migrate(&clickhouse).await.expect("migrations apply");
        let integrations =
            cmctl::read_integrations(&repo_root().join("deploy/integrations/samples.json"))
                .expect("sample integrations");
        cmctl::publish_integrations(&kafka, &integrations)
            .await
            .expect("publish integrations");
        Self {
            name: id,
            kafka,
            clickhouse,
        }
    }

    pub fn client(&self) -> clickhouse::Client {
        self.clickhouse.client()
    }

    /// Environment for a binary: everything it needs to join this test's world.
    fn binary_env(&self, prefix: &str, port: u16) -> Vec<(String, String)> {
        let mut env = vec![
            (
                format!("{prefix}_KAFKA__BROKERS"),
                self.kafka.brokers.clone(),
            ),
            (
                format!("{prefix}_KAFKA__TOPIC_PREFIX"),
                self.kafka.topic_prefix.clone(),
            ),
            (
                format!("{prefix}_HTTP__LISTEN"),
                format!("127.0.0.1:{port}"),
            ),
        ];
        if prefix != "INGEST" {
            env.push((
                format!("{prefix}_CLICKHOUSE__URL"),
                self.clickhouse.url.clone(),
            ));
            env.push((
                format!("{prefix}_CLICKHOUSE__DATABASE"),
                self.clickhouse.database.clone(),
            ));
            // The api reads as the read-only user, the processor writes as the writer.
            let (user, password) = if prefix == "API" {
                ("callmatrix_reader".to_owned(), reader_password())
            } else {
                (
                    self.clickhouse.user.clone(),
                    self.clickhouse.password.clone(),
                )
            };
            env.push((format!("{prefix}_CLICKHOUSE__USER"), user));
            env.push((format!("{prefix}_CLICKHOUSE__PASSWORD"), password));
        }
        if prefix != "PROCESSOR" {
            // Tests that are not about tokens run open on loopback; the access and
            // hostile-tenant suites give a tokens file (which takes precedence).
            env.push((format!("{prefix}_AUTH__INSECURE_OPEN"), "true".into()));
        }
        if prefix == "INGEST" {
            // The fake partners of the polling and import tests listen on loopback;
            // the hostile-tenant suite narrows this to one port.
            env.push(("INGEST_OUTBOUND__ALLOW".into(), r#"["127.0.0.1"]"#.into()));
        }
        env
    }

    /// Starts `binary` (ingest, processor or api) with the shipped config file plus
    /// this environment's overrides and `extra`, and waits for its `/healthz`.
    pub async fn start(&self, binary: &str, extra: &[(&str, &str)]) -> Service {
        self.start_on(binary, free_port(), extra).await
    }

    /// As [`TestEnv::start`], but waits only for `/healthz` to answer, healthy or
    /// not: for a binary whose health is what the test looks at.
    pub async fn start_unhealthy_ok(&self, binary: &str, extra: &[(&str, &str)]) -> Service {
        let service = self.spawn(binary, free_port(), extra);
        let client = reqwest::Client::new();
        let url = service.url("/healthz");
        eventually(
            &format!("{binary} to answer /healthz"),
            Duration::from_secs(60),
            || {
                let (client, url) = (client.clone(), url.clone());
                async move { client.get(url).send().await.ok().map(|_| ()) }
            },
        )
        .await;
        service
    }

    /// As [`TestEnv::start`], on a given port: a restarted instance where its
    /// clients (an SSE client reconnecting by itself) expect it.
    pub async fn start_on(&self, binary: &str, port: u16, extra: &[(&str, &str)]) -> Service {
        let service = self.spawn(binary, port, extra);
        service.wait_healthy(Duration::from_secs(60)).await;
        service
    }

    /// As [`TestEnv::start`], with the binary's log (stdout and stderr, at `level`,
    /// a `RUST_LOG` filter) written to `log` instead of the test's output: for tests
    /// that read what a binary logs.
    pub async fn start_logged(
        &self,
        binary: &str,
        extra: &[(&str, &str)],
        level: &str,
        log: &std::path::Path,
    ) -> Service {
        let file = std::fs::File::create(log).unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let err = file
            .try_clone()
            .unwrap_or_else(|e| panic!("{}: {e}", log.display()));
        let mut with_level: Vec<(&str, &str)> = extra.to_vec();
        with_level.push(("RUST_LOG", level));
        let service = self.spawn_with(binary, free_port(), &with_level, Some((file, err)));
        service.wait_healthy(Duration::from_secs(60)).await;
        service
    }

    fn spawn(&self, binary: &str, port: u16, extra: &[(&str, &str)]) -> Service {
        self.spawn_with(binary, port, extra, None)
    }

    fn spawn_with(
        &self,
        binary: &str,
        port: u16,
        extra: &[(&str, &str)],
        output: Option<(std::fs::File, std::fs::File)>,
    ) -> Service {
        let prefix = binary.to_uppercase();
        let mut command = Command::new(binary_path(binary));
        command
            .arg("--config")
            .arg(repo_root().join(format!("deploy/config/{binary}.toml")))
            .envs(self.binary_env(&prefix, port))
            .env(
                "RUST_LOG",
                std::env::var("CM_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .envs(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .stdin(Stdio::null());
        if let Some((out, err)) = output {
            command.stdout(out).stderr(err);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|e| panic!("starting {binary}: {e}"));
        Service {
            name: binary.to_owned(),
            port,
            child: Some(child),
        }
    }
}

/// A running binary; killed when dropped.
pub struct Service {
    pub name: String,
    pub port: u16,
    child: Option<Child>,
}

impl Service {
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn wait_healthy(&self, timeout: Duration) {
        let client = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(response) = client.get(self.url("/healthz")).send().await {
                if response.status().is_success() {
                    return;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{} did not become healthy within {timeout:?}",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// POSTs `body` to this ingest's webhook for `client_id`; returns the status and
    /// the JSON answer.
    pub async fn post_webhook(
        &self,
        client_id: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, serde_json::Value) {
        let response = reqwest::Client::new()
            .post(self.url(&format!("/api/integrations/webhook/{client_id}")))
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("webhook request");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    /// Waits until this instance's `/healthz` shows `client_id` at `version` or later
    /// (ingest reports the integration versions it serves).
    pub async fn wait_for_integration(&self, client_id: &str, version: u64) {
        let client = reqwest::Client::new();
        let url = self.url("/healthz");
        eventually(
            &format!("{} to serve {client_id} v{version}", self.name),
            Duration::from_secs(30),
            || {
                let (client, url) = (client.clone(), url.clone());
                async move {
                    let health: serde_json::Value =
                        client.get(url).send().await.ok()?.json().await.ok()?;
                    (health["integrations"][client_id].as_u64()? >= version).then_some(())
                }
            },
        )
        .await;
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Resident memory (KiB) from `/proc`, while it runs.
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()?)).ok()?;
        status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Waits for the process to end by itself (an armed crash point); `None` if it
    /// is still running after `timeout`.
    pub async fn exited(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            let child = self.child.as_mut()?;
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// SIGKILL: no graceful shutdown, no last commit. What a crash looks like.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A tansu broker of one test's own, for tests that stop the broker: the shared one
/// must stay up for the tests running beside it.
pub struct PrivateBroker {
    pub port: u16,
    data: tempfile::TempDir,
    child: Option<Child>,
}

impl PrivateBroker {
    pub async fn start() -> Self {
        let data = tempfile::tempdir().expect("temp dir");
        let mut broker = Self {
            port: free_port(),
            data,
            child: None,
        };
        broker.resume().await;
        broker
    }

    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Starts (again) on the same port and storage.
    pub async fn resume(&mut self) {
        // tansu drops the first slash of a sqlite path: an absolute path needs four.
        let storage = format!("sqlite:///{}/tansu.db", self.data.path().display());
        let listener = format!("tcp://127.0.0.1:{}", self.port);
        let child = Command::new("tansu")
            .args([
                "broker",
                "--listener-url",
                &listener,
                "--advertised-listener-url",
                &listener,
                "--storage-engine",
                &storage,
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(self.log_file())
            .spawn()
            .expect("tansu on PATH (deploy/stack.sh install puts it there)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tansu did not listen on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn log_file(&self) -> Stdio {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data.path().join("tansu.log"))
            .map(Stdio::from)
            .unwrap_or_else(|_| Stdio::null())
    }

    /// The last `lines` lines the broker wrote to stderr, for a failing test's message.
    pub fn log_tail(&self, lines: usize) -> String {
        let log = std::fs::read_to_string(self.data.path().join("tansu.log")).unwrap_or_default();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// SIGKILL: the broker vanishes mid-request.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateBroker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// One of the sample integrations (`deploy/integrations/samples.json`), edited as
/// JSON (so a test can change any field, or add `auth`, `poll`...), and validated.
pub fn sample_integration(
    client_id: &str,
    edit: impl FnOnce(&mut serde_json::Value),
) -> schemas::Integration {
    let all = cmctl::read_integrations(&repo_root().join("deploy/integrations/samples.json"))
        .expect("sample integrations");
    let sample = all
        .into_iter()
        .find(|i| i.client_id.as_str() == client_id)
        .unwrap_or_else(|| panic!("no sample integration {client_id}"));
    let mut value = serde_json::to_value(sample).expect("integration as JSON");
    edit(&mut value);
    let integration: schemas::Integration =
        serde_json::from_value(value).expect("edited integration parses");
    integration.validate().expect("edited integration is valid");
    integration
}

/// The read-only ClickHouse user's password (deploy/test.sh exports it).
pub fn reader_password() -> String {
    std::env::var("CM_TEST_CLICKHOUSE_READER_PASSWORD").unwrap_or_default()
}

/// The analysts' ClickHouse user's password (deploy/test.sh exports it).
pub fn analyst_password() -> String {
    std::env::var("CM_TEST_CLICKHOUSE_ANALYST_PASSWORD").unwrap_or_default()
}

/// Runs a browser check (`node tests/browser/SCRIPT ARGS… SCREENSHOT`, Debian's
/// chromium driven by playwright-core, which `deploy/test.sh` installs) and fails
/// unless it succeeds within `timeout` and saved its screenshot
/// (`.data/test/artifacts/SCREENSHOT`). Returns what it printed.
pub async fn browser_check(
    script: &str,
    args: &[&str],
    screenshot: &str,
    timeout: Duration,
) -> String {
    let browser_dir = repo_root().join("tests/browser");
    assert!(
        browser_dir.join("node_modules/playwright-core").exists(),
        "playwright-core is missing: deploy/test.sh installs it (npm ci --prefix tests/browser)"
    );
    let artifacts = repo_root().join(".data/test/artifacts");
    std::fs::create_dir_all(&artifacts).expect("the artifacts directory");
    let shot = artifacts.join(screenshot);
    let _ = std::fs::remove_file(&shot);
    let mut command = Command::new("node");
    command.arg(browser_dir.join(script)).args(args).arg(&shot);
    let output = tokio::time::timeout(
        timeout,
        tokio::task::spawn_blocking(move || command.output()),
    )
    .await
    .unwrap_or_else(|_| panic!("{script} did not finish within {timeout:?}"))
    .expect("the browser check's task")
    .expect("node runs");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{script} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let size = std::fs::metadata(&shot).map(|m| m.len()).unwrap_or(0);
    assert!(size > 10_000, "{script} saved {screenshot} ({size} bytes)");
    stdout
}

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The workspace's binaries sit next to the test executable's `deps/` folder.
fn binary_path(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target directory");
    let path = dir.join(name);
    assert!(path.exists(), "{} is missing: build the binaries first (`cargo build --workspace --bins`, which deploy/test.sh does)", path.display());
    path
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Polls `check` until it returns `Some`, or panics with `what` after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Publishes CallMatrix's own data from a file (default region US): the numbers it
/// manages or the calls it routed, as `cmctl callmatrix` does.
pub async fn load_callmatrix(env: &TestEnv, kind: cmctl::callmatrix::Kind, file: &Path) {
    cmctl::callmatrix::load(&env.kafka, kind, file, "US")
        .await
        .unwrap_or_else(|e| panic!("loading {}: {e}", file.display()));
}

/// CallMatrix's sample numbers and calls (`tests/fixtures/callmatrix-*`): cm_0001 is
/// the arroyo sample's first call seen from CallMatrix's side, 2 s earlier.
pub async fn load_callmatrix_samples(env: &TestEnv) {
    let fixtures = repo_root().join("tests/fixtures");
    for (kind, file) in [
        (cmctl::callmatrix::Kind::Numbers, "callmatrix-numbers.csv"),
        (cmctl::callmatrix::Kind::Calls, "callmatrix-calls.json"),
    ] {
        load_callmatrix(env, kind, &fixtures.join(file)).await;
    }
}

/// Waits until `cm_calls` holds `cm_call_id` (the processor stores what was loaded).
pub async fn callmatrix_call_stored(client: &clickhouse::Client, cm_call_id: &str) {
    eventually(
        &format!("{cm_call_id} stored"),
        Duration::from_secs(60),
        || async {
            let n: u64 = client
                .query("SELECT count() FROM cm_calls WHERE cm_call_id = ?")
                .bind(cm_call_id)
                .fetch_one()
                .await
                .unwrap_or(0);
            (n == 1).then_some(())
        },
    )
    .await;
}

pub fn fixture(name: &str) -> String {
    std::fs::read_to_string(repo_root().join("tests/fixtures").join(name)).expect("fixture")
}

/// `SELECT count() FROM calls FINAL WHERE client_id = ?`: one per call id.
/// When the newest stored version of any of `client_id`'s calls was received (Unix
/// seconds; 0 when none). A re-delivery that replaced rows moves it forward: the
/// evidence a "nothing doubled" check needs that the re-delivery was processed.
pub async fn latest_receipt(client: &clickhouse::Client, client_id: &str) -> u32 {
    client
        .query("SELECT toUInt32(max(received_at)) FROM calls FINAL WHERE client_id = ?")
        .bind(client_id)
        .fetch_one::<u32>()
        .await
        .unwrap_or(0)
}

/// Waits until a delivery received after `before` has been stored for `client_id`.
/// Call it after a pause of over a second since `before` was read (receipts are whole
/// seconds).
pub async fn wait_for_newer_receipt(client: &clickhouse::Client, client_id: &str, before: u32) {
    eventually(
        &format!("a newer delivery of {client_id} stored"),
        Duration::from_secs(60),
        || async { (latest_receipt(client, client_id).await > before).then_some(()) },
    )
    .await;
}

pub async fn final_count(client: &clickhouse::Client, client_id: &str) -> u64 {
    client
        .query("SELECT count() FROM calls FINAL WHERE client_id = ?")
        .bind(client_id)
        .fetch_one::<u64>()
        .await
        .unwrap_or(0)
}

/// One record of a topic read from its start.
pub struct TopicRecord {
    pub key: String,
    pub partition: i32,
    /// `None` for a tombstone.
    pub payload: Option<Vec<u8>>,
}

/// Every record of partitions `0..partitions` of `topic`, from the start to each
/// partition's end as it is when called (within 20 s). Blocking.
pub fn read_topic(env: &TestEnv, topic: &str, partitions: i32) -> Vec<TopicRecord> {
    read_topic_at(&env.kafka.brokers, &env.name, topic, partitions)
}

/// [`read_topic`] on any broker; `group` names the reader's group.
pub fn read_topic_at(brokers: &str, group: &str, topic: &str, partitions: i32) -> Vec<TopicRecord> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("{group}.read-topic"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("a reader");
    let mut assignment = TopicPartitionList::new();
    let mut expected = 0usize;
    for partition in 0..partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("the ends of {topic}[{partition}]: {e}"));
        expected += usize::try_from(high - low).unwrap_or(0);
        assignment
            .add_partition_offset(topic, partition, Offset::Beginning)
            .expect("a partition to read");
    }
    consumer.assign(&assignment).expect("assigned");
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < expected && std::time::Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(message)) => seen.push(TopicRecord {
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).into_owned(),
                partition: message.partition(),
                payload: message.payload().map(<[u8]>::to_vec),
            }),
            Some(Err(error)) => panic!("reading {topic}: {error}"),
            None => {}
        }
    }
    seen
}

/// How many partitions `topic` has. Blocking.
pub fn partition_count(env: &TestEnv, topic: &str) -> i32 {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::ClientConfig;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .expect("a reader");
    let metadata = consumer
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("the partitions of {topic}: {e}"));
    i32::try_from(metadata.topics()[0].partitions().len()).unwrap_or(i32::MAX)
}

/// The SSE event id of `topic`'s end now (`partition:high` for every partition):
/// what a client that had every event so far resumes from. Blocking.
pub fn topic_end_id(env: &TestEnv, topic: &str) -> String {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::ClientConfig;
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &env.kafka.brokers)
        .create()
        .expect("a reader");
    (0..partition_count(env, topic))
        .map(|partition| {
            let (_, high) = consumer
                .fetch_watermarks(topic, partition, Duration::from_secs(10))
                .unwrap_or_else(|e| panic!("the ends of {topic}[{partition}]: {e}"));
            format!("{partition}:{high}")
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Sends `request` and reads its JSON body; `None` on any failure, for the polls of
/// [`eventually`].
pub async fn json_of(request: reqwest::RequestBuilder) -> Option<serde_json::Value> {
    request.send().await.ok()?.json().await.ok()
}

/// The sum of every sample of `name` (any labels; `label` narrows to samples carrying
/// it, e.g. `table="calls_hourly"`) on a binary's `/metrics` page.
pub async fn metric_sum(service: &Service, name: &str, label: Option<&str>) -> f64 {
    let text = reqwest::get(service.url("/metrics"))
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("metrics text");
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let metric = series.split('{').next()?;
            (metric == name && label.is_none_or(|l| series.contains(l)))
                .then(|| value.parse::<f64>().ok())?
        })
        .sum()
}
