use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use runtime::clickhouse::ClickHouseConfig;
use runtime::kafka::KafkaConfig;
use runtime::replay::ReplaySource;

/// Operator commands for the call-integrations pipeline.
#[derive(Parser)]
#[command(name = "cmctl", version)]
struct Cli {
    /// Kafka bootstrap servers.
    #[arg(
        long,
        env = "CM_KAFKA_BROKERS",
        default_value = "127.0.0.1:19092",
        global = true
    )]
    brokers: String,
    /// Prefix of topic and group names (one per environment).
    #[arg(long, env = "CM_TOPIC_PREFIX", default_value = "", global = true)]
    topic_prefix: String,
    /// ClickHouse HTTP URL.
    #[arg(
        long,
        env = "CM_CLICKHOUSE_URL",
        default_value = "http://127.0.0.1:18123",
        global = true
    )]
    clickhouse_url: String,
    /// ClickHouse database.
    #[arg(long, env = "CM_DATABASE", default_value = "callmatrix", global = true)]
    database: String,
    /// ClickHouse cluster the schema is spread over (cluster mode of the
    /// migrations; docs/deploy.md). Unset: one server.
    #[arg(long, env = "CM_CLICKHOUSE_CLUSTER", global = true)]
    clickhouse_cluster: Option<String>,
    /// ClickHouse user: the pipeline's writer (migrations and loads write).
    #[arg(
        long,
        env = "CM_CLICKHOUSE_USER",
        default_value = "callmatrix_writer",
        global = true
    )]
    clickhouse_user: String,
    /// Its password (the local stack keeps it in .data/stack/secrets/clickhouse.env).
    #[arg(
        long,
        env = "CM_CLICKHOUSE_PASSWORD",
        default_value = "",
        hide_env_values = true,
        hide_default_value = true,
        global = true
    )]
    clickhouse_password: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the pipeline's topics that do not exist yet, and give those that do
    /// the settings they should have (retention, cleanup policy).
    Topics {
        /// Partitions of the raw and enriched topics.
        #[arg(long, default_value_t = 3)]
        partitions: i32,
        /// How long the topics that carry callers' records keep them (raw,
        /// enriched, dead letters, parked, CallMatrix calls, refused deliveries),
        /// in hours: 1 to 8760. Also how far back an SSE client can resume.
        #[arg(long, default_value_t = 168)]
        retention_hours: u64,
    },
    /// Apply the ClickHouse migrations not applied yet.
    Migrate,
    /// Roll every stored call up again into the hourly rollups, at a version below any
    /// the processor writes: for calls loaded into ClickHouse without the processor.
    RollupBackfill,
    /// The processor's keyed state.
    #[command(subcommand)]
    State(StateCommand),
    /// Integration definitions.
    #[command(subcommand)]
    Integrations(IntegrationsCommand),
    /// CallMatrix's own data: the numbers it manages and the calls it routed.
    #[command(subcommand)]
    Callmatrix(CallmatrixCommand),
    /// Import a CSV file, a Google Sheets link or a CSV URL into an integration,
    /// through ingest, showing progress and the rejected rows.
    Import {
        client_id: String,
        /// A file path, or an http(s) URL (Google Sheets links are understood).
        source: String,
        /// The ingest instance to send it to.
        #[arg(long, env = "CM_INGEST_URL", default_value = "http://127.0.0.1:8080")]
        ingest: String,
        /// An admin token, or the token of the account that owns the integration
        /// (from ingest's `auth.tokens_file`).
        #[arg(long, env = "CM_TOKEN")]
        token: Option<String>,
    },
    /// Ask ingest to poll an integration's partner API now; with `--test`, read one
    /// page and show it (request sent, secrets masked; the answer; the records as
    /// mapped; the next cursor) without storing anything.
    Poll {
        client_id: String,
        /// A dry run of one page.
        #[arg(long)]
        test: bool,
        /// With --test: a draft poll block (a JSON file holding `{"poll": {...}}` or
        /// the poll object) tried instead of the saved one.
        #[arg(long, requires = "test")]
        draft: Option<std::path::PathBuf>,
        #[arg(long, env = "CM_INGEST_URL", default_value = "http://127.0.0.1:8080")]
        ingest: String,
        /// An admin token, or the token of the account that owns the integration.
        #[arg(long, env = "CM_TOKEN")]
        token: Option<String>,
    },
    /// Apply a retention policy to one account now, as the processor's retention
    /// worker does (docs/privacy.md): callers of calls older than `--personal-days`
    /// hashed (with CM_RETENTION_HASH_KEY) or emptied, their ZIP and city emptied,
    /// dead letters older than `--dead-letter-days` deleted. Prints what it changed
    /// and how long it took; records the run in `retention_runs`.
    Retention {
        account: String,
        #[arg(long)]
        personal_days: Option<u32>,
        #[arg(long)]
        dead_letter_days: Option<u32>,
        /// Empty the callers' numbers instead of hashing them.
        #[arg(long)]
        nullify: bool,
        #[command(flatten)]
        key: HashKey,
    },
    /// Callers' personal data (docs/privacy.md).
    #[command(subcommand)]
    Privacy(PrivacyCommand),
    /// Send one integration's past records through the pipeline again, so its
    /// current mapping applies to them (rows are replaced, not doubled).
    Replay {
        /// The integration's client id.
        client_id: String,
        /// Replay the records its mapping refused (the dead-letter topic) instead of
        /// every raw record.
        #[arg(long)]
        dead_letters: bool,
    },
}

#[derive(Subcommand)]
enum PrivacyCommand {
    /// Erase one caller of one account: the order goes to the caller's partition
    /// (its keyed state first), then a processor erases ClickHouse: the number
    /// replaced by the erasure's token in every call, ZIP, city and state emptied,
    /// every spelling cut out of warnings, attributes and dead letters; counts and
    /// money kept. Waits for the processor's receipt and prints it (rows changed per
    /// place; `GET /api/privacy/erasures` lists it); never prints the number. Audited.
    Erase {
        account: String,
        /// The caller's number, in any spelling.
        number: String,
        /// Region of a number written without its country code.
        #[arg(long, default_value = "US")]
        region: String,
        /// The id of an earlier run of this erasure, to finish it.
        #[arg(long)]
        id: Option<uuid::Uuid>,
        /// Also store the caller's later calls without the number (the suppression
        /// list); without it, later calls of the caller are stored as they come.
        #[arg(long)]
        suppress: bool,
        /// Seconds to wait for the processor's receipt (its mutations included).
        #[arg(long, default_value_t = 120)]
        wait_s: u64,
    },
    /// Take a caller off the suppression list (`erase --suppress`): the caller's
    /// records after the lift are stored with their number; those stored while it
    /// was suppressed stay erased. Audited; never prints the number.
    Lift {
        account: String,
        /// The caller's number, in any spelling.
        number: String,
        /// Region of a number written without its country code.
        #[arg(long, default_value = "US")]
        region: String,
    },
}

#[derive(Subcommand)]
enum StateCommand {
    /// Build every partition's state from the calls ClickHouse holds, once, for a
    /// deployment that stored calls before the processor kept its own state (docs/
    /// architecture.md, "Keyed state"). Run it with the processors stopped.
    Build {
        /// Days of calls kept per caller: the processors' `state.retention_days`.
        #[arg(long, default_value_t = 45)]
        retention_days: u32,
        // The keyed state names callers by it.
        #[command(flatten)]
        key: HashKey,
    },
}

/// The deployment's hash key: the processors' `retention.hash_key`.
#[derive(Args)]
struct HashKey {
    /// The deployment's hash key (the processors' retention.hash_key).
    #[arg(
        long,
        env = "CM_RETENTION_HASH_KEY",
        hide_env_values = true,
        default_value = ""
    )]
    hash_key: String,
}

#[derive(Subcommand)]
enum CallmatrixCommand {
    /// Publish managed numbers (CSV: number,account,campaign[,active]; or JSON).
    /// A number published with `active: false` stops counting as CallMatrix's.
    Numbers {
        file: PathBuf,
        /// Region for numbers written without a country code.
        #[arg(long, default_value = "US")]
        region: String,
    },
    /// Publish routed calls (JSON array or lines, or CSV with the same columns:
    /// cm_call_id, caller, called, started_at, duration_s, payout).
    Calls {
        file: PathBuf,
        #[arg(long, default_value = "US")]
        region: String,
    },
}

#[derive(Subcommand)]
enum IntegrationsCommand {
    /// List the integrations published now (client id, account, source, version).
    List,
    /// Validate a JSON array of integrations and publish each to the integrations topic.
    Publish { file: PathBuf },
    /// Validate a file without publishing it.
    Check { file: PathBuf },
    /// List the mapping presets for common call platforms.
    Presets,
    /// Print a new integration made from a preset, to adjust and then publish.
    New {
        /// Preset name (see `cmctl integrations presets`).
        #[arg(long)]
        preset: String,
        /// Client id for the webhook URL and every record.
        #[arg(long)]
        client_id: String,
        /// Platform account the calls belong to.
        #[arg(long)]
        account: String,
        /// Human name (default: the client id).
        #[arg(long)]
        name: Option<String>,
        /// How records arrive: webhook, poll or csv.
        #[arg(long, default_value = "poll")]
        source: String,
        /// A setting of the preset's poll block, `name=value` (repeat for each; see
        /// `cmctl integrations presets` for what each preset needs).
        #[arg(long = "set", value_name = "NAME=VALUE")]
        settings: Vec<String>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    runtime::telemetry::init_logging();
    let cli = Cli::parse();
    let kafka = KafkaConfig::new(cli.brokers.clone(), cli.topic_prefix.clone());
    let clickhouse = ClickHouseConfig {
        url: cli.clickhouse_url.clone(),
        database: cli.database.clone(),
        user: cli.clickhouse_user.clone(),
        password: cli.clickhouse_password.clone(),
        cluster: cli.clickhouse_cluster.clone().filter(|c| !c.is_empty()),
    };
    clickhouse.validate("clickhouse")?;
    match cli.command {
        Command::Topics {
            partitions,
            retention_hours,
        } => {
            let retention = cmctl::TopicRetention::from_hours(retention_hours)?;
            let report = cmctl::create_topics(&kafka, partitions, &retention).await?;
            println!(
                "topics created: {}",
                if report.created.is_empty() {
                    "none (all exist)".into()
                } else {
                    report.created.join(", ")
                }
            );
            for change in &report.changed {
                println!("topic setting changed: {change}");
            }
        }
        Command::Migrate => {
            let applied = cmctl::migrate(&clickhouse).await?;
            println!(
                "migrations applied: {}",
                if applied.is_empty() {
                    "none (up to date)".into()
                } else {
                    format!("{applied:?}")
                }
            );
        }
        Command::Retention {
            account,
            personal_days,
            dead_letter_days,
            nullify,
            key: HashKey { hash_key },
        } => {
            let policy = schemas::retention::RetentionPolicy {
                account,
                personal_days,
                dead_letter_days,
                caller: if nullify {
                    schemas::retention::CallerAction::Nullify
                } else {
                    schemas::retention::CallerAction::Hash
                },
                updated_at: None,
            };
            if let Some((field, problem)) = policy.problem() {
                anyhow::bail!("--{}: {problem}", field.replace('_', "-"));
            }
            let config = processor::config::RetentionConfig {
                hash_key,
                ..Default::default()
            };
            let started = std::time::Instant::now();
            let target = processor::mutations::Mutations::new(clickhouse.client(), &clickhouse);
            let run = processor::retention::run_once(&target, &policy, &config).await?;
            println!(
                "retention of {}: {} call rows changed, {} dead letters deleted, {} ({:.1} s)",
                run.account,
                run.calls_changed,
                run.dead_letters_deleted,
                run.outcome,
                started.elapsed().as_secs_f64()
            );
        }
        Command::Privacy(PrivacyCommand::Erase {
            account,
            number,
            region,
            id,
            suppress,
            wait_s,
        }) => {
            let started = std::time::Instant::now();
            let request = cmctl::ErasureRequest {
                account: &account,
                number: &number,
                region: &region,
                id,
                suppress,
            };
            let receipt = cmctl::erase_caller(
                &kafka,
                &clickhouse.client(),
                &request,
                &cmctl::cli_actor(),
                std::time::Duration::from_secs(wait_s),
            )
            .await?;
            let places: Vec<String> = receipt
                .places
                .iter()
                .zip(&receipt.rows)
                .map(|(place, rows)| format!("{place} {rows}"))
                .collect();
            println!(
                "erasure {} of a caller of {}: rows changed: {}; {} ({:.1} s)",
                receipt.id,
                receipt.account,
                places.join(", "),
                receipt.outcome,
                started.elapsed().as_secs_f64()
            );
            match schemas::erasure::known_time(receipt.topics_clear_by) {
                Some(at) => println!(
                    "the topics hold none of the caller's earlier records by {} (their retention)",
                    at.to_rfc3339()
                ),
                None => println!(
                    "when the topics will be clear of the caller is not known: a topic carrying calls keeps records for ever, or the broker did not answer (cmctl topics sets their retention)"
                ),
            }
        }
        Command::Privacy(PrivacyCommand::Lift {
            account,
            number,
            region,
        }) => {
            let id =
                cmctl::lift_suppression(&kafka, &account, &number, &region, &cmctl::cli_actor())
                    .await?;
            println!(
                "lift {id} of a caller of {account} sent: the caller's partition applies it with its next batch (processor_suppression_lifts_total)"
            );
        }
        Command::RollupBackfill => {
            let started = std::time::Instant::now();
            runtime::migrate::backfill_rollups(&clickhouse).await?;
            println!(
                "rollups backfilled in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }
        Command::State(StateCommand::Build {
            retention_days,
            key: HashKey { hash_key },
        }) => {
            let started = std::time::Instant::now();
            let producer = runtime::kafka::AckedProducer::new(&kafka)?;
            let changelog = processor::state::Changelog::new(producer, &kafka);
            let mut last = std::time::Instant::now();
            let done = processor::state::build(
                &changelog,
                &clickhouse.client(),
                &processor::state::CallerNames::new(&hash_key),
                retention_days,
                |p| {
                    if last.elapsed() >= std::time::Duration::from_secs(5) {
                        last = std::time::Instant::now();
                        eprintln!(
                            "[state build] {} calls, {} callers, {} CmCalls written ({:.0} s)",
                            p.calls,
                            p.callers,
                            p.cm_calls,
                            started.elapsed().as_secs_f64()
                        );
                    }
                },
            )
            .await?;
            println!(
                "state built for {} partitions: {} calls, {} callers, {} CmCalls started since {} (newest {}), in {:.1} s",
                done.partitions,
                done.calls,
                done.callers,
                done.cm_calls,
                done.horizon.map(|h| h.to_rfc3339()).unwrap_or_default(),
                done.watermark.map(|w| w.to_rfc3339()).unwrap_or_default(),
                started.elapsed().as_secs_f64()
            );
        }
        Command::Replay {
            client_id,
            dead_letters,
        } => {
            let client = schemas::ClientId::parse(&client_id).context("client id")?;
            let source = if dead_letters {
                ReplaySource::DeadLetters
            } else {
                ReplaySource::Raw
            };
            let report = cmctl::replay::replay(&kafka, &client, source, |r| {
                eprintln!(
                    "replay {client_id}: read {} messages, replayed {}",
                    r.read, r.replayed
                );
            })
            .await?;
            println!(
                "replayed {} records of {client_id} ({} messages read{})",
                report.replayed,
                report.read,
                if report.not_replayable > 0 {
                    format!(
                        ", {} dead letters refused at the edge cannot be replayed",
                        report.not_replayable
                    )
                } else {
                    String::new()
                }
            );
        }
        Command::Import {
            client_id,
            source,
            ingest,
            token,
        } => {
            let status = if cmctl::ingest_client::is_url(&source) {
                cmctl::ingest_client::import_url(&ingest, &client_id, &source, token.as_deref())
                    .await?
            } else {
                cmctl::ingest_client::import_file(
                    &ingest,
                    &client_id,
                    std::path::Path::new(&source),
                    token.as_deref(),
                )
                .await?
            };
            println!("{}", cmctl::ingest_client::summary(&status));
            if status["state"] == "failed" {
                anyhow::bail!("the import failed");
            }
        }
        Command::Poll {
            client_id,
            test: true,
            draft,
            ingest,
            token,
        } => {
            let draft = match draft {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("reading {}", path.display()))?;
                    let value: serde_json::Value = serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", path.display()))?;
                    Some(if value.get("poll").is_some() {
                        value
                    } else {
                        serde_json::json!({ "poll": value })
                    })
                }
                None => None,
            };
            let answer = cmctl::ingest_client::poll_test(
                &ingest,
                &client_id,
                draft.as_ref(),
                token.as_deref(),
            )
            .await?;
            println!("{}", serde_json::to_string_pretty(&answer)?);
            if let Some(error) = answer["error"].as_str() {
                anyhow::bail!("the page could not be read: {error}");
            }
        }
        Command::Poll {
            client_id,
            ingest,
            token,
            ..
        } => {
            let answer =
                cmctl::ingest_client::poll_now(&ingest, &client_id, token.as_deref()).await?;
            println!("poll of {client_id} triggered: {answer}");
        }
        Command::Integrations(IntegrationsCommand::List) => {
            for integration in cmctl::list_integrations(&kafka).await? {
                println!(
                    "{:<24} {:<16} {:<8} v{:<4} {}{}",
                    integration.client_id.as_str(),
                    integration.account,
                    integration.source.as_str(),
                    integration.version,
                    integration.name,
                    if integration.enabled {
                        ""
                    } else {
                        "  (disabled)"
                    }
                );
            }
        }
        Command::Callmatrix(command) => {
            let (kind, file, region) = match command {
                CallmatrixCommand::Numbers { file, region } => {
                    (cmctl::callmatrix::Kind::Numbers, file, region)
                }
                CallmatrixCommand::Calls { file, region } => {
                    (cmctl::callmatrix::Kind::Calls, file, region)
                }
            };
            let published = cmctl::callmatrix::load(&kafka, kind, &file, &region)
                .await
                .with_context(|| format!("loading {}", file.display()))?;
            println!(
                "published {published} {kind:?} records from {}",
                file.display()
            );
        }
        Command::Integrations(IntegrationsCommand::Presets) => {
            for name in schemas::presets::names() {
                if let Some(preset) = schemas::presets::preset(name) {
                    println!("{name}\n    {}", preset.description);
                    for (setting, about) in &preset.settings {
                        let default = about
                            .default
                            .as_ref()
                            .map(|d| format!(" (default {d})"))
                            .unwrap_or_default();
                        println!("    --set {setting}=…  {}{default}", about.description);
                    }
                    println!();
                }
            }
        }
        Command::Integrations(IntegrationsCommand::New {
            preset,
            client_id,
            account,
            name,
            source,
            settings,
        }) => {
            let settings: std::collections::BTreeMap<String, String> = settings
                .iter()
                .map(|pair| {
                    pair.split_once('=')
                        .map(|(k, v)| (k.trim().to_owned(), v.to_owned()))
                        .with_context(|| format!("--set {pair:?}: expected NAME=VALUE"))
                })
                .collect::<anyhow::Result<_>>()?;
            let source = match source.as_str() {
                "webhook" => schemas::Source::Webhook,
                "poll" => schemas::Source::Poll,
                "csv" => schemas::Source::Csv,
                other => anyhow::bail!("--source {other:?}: expected webhook, poll or csv"),
            };
            let client = schemas::ClientId::parse(&client_id).context("--client-id")?;
            let name = name.unwrap_or_else(|| client_id.clone());
            let integration = if source == schemas::Source::Poll {
                schemas::presets::integration_with(
                    &preset, client, &account, &name, source, &settings,
                )?
            } else {
                schemas::presets::integration(&preset, client, &account, &name, source)?
            };
            println!("{}", serde_json::to_string_pretty(&[integration])?);
        }
        Command::Integrations(IntegrationsCommand::Check { file }) => {
            let integrations = cmctl::read_integrations(&file)?;
            println!(
                "{}: {} valid integrations",
                file.display(),
                integrations.len()
            );
        }
        Command::Integrations(IntegrationsCommand::Publish { file }) => {
            let integrations = cmctl::read_integrations(&file)?;
            cmctl::publish_audited(&kafka, &integrations, &cmctl::cli_actor())
                .await
                .with_context(|| format!("publishing {}", file.display()))?;
            for integration in &integrations {
                println!(
                    "published {} v{} ({})",
                    integration.client_id, integration.version, integration.name
                );
            }
        }
    }
    Ok(())
}
