//! The `juhe` command line. Commands print machine-readable JSON on stdout and logs on
//! stderr, so they compose in scripts.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};

use juhe::app::{init_logging, Application, ShutdownSignals};
use juhe::config::{Config, LogFormat, Overrides, DEFAULT_CONFIG};
use juhe::store::import::{ImportError, ImportFile, ImportSummary};
use juhe::store::{MerchantId, Store};

#[derive(Parser, Debug)]
#[command(
    name = "juhe",
    version,
    about = "Juhe (聚合): self-hosted 友米聚合 open API server"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct Global {
    /// Configuration file (TOML); see `juhe default-config`.
    #[arg(long, global = true, env = "JUHE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Database URL: sqlite://PATH or postgres://… (overrides JUHE_DATABASE_URL).
    #[arg(long, global = true)]
    pub database: Option<String>,
    /// Log format: text or json.
    #[arg(long, global = true, value_parser = ["text", "json"])]
    pub log_format: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the API server.
    Serve {
        /// Address to listen on (default 127.0.0.1:5001).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Write a consistent copy of a SQLite database while the server runs (PostgreSQL: use pg_dump).
    Backup {
        /// The copy to write; an existing file is refused unless --force.
        #[arg(long)]
        to: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
    },
    /// Print a commented default configuration file.
    DefaultConfig,
    /// Manage merchants (租户).
    #[command(subcommand)]
    Merchant(MerchantCmd),
    /// Manage agents (代理商).
    #[command(subcommand)]
    Agent(AgentCmd),
    /// Events and their deliveries to callback URLs: list, show, attempts, replay.
    #[command(subcommand)]
    Events(EventsCmd),
    /// Manage assistant devices (助手) that connect to /assistant/ws.
    #[command(subcommand)]
    Device(DeviceCmd),
    /// Import a merchant's organisation and history from a JSON file (the fixture format).
    Import {
        #[arg(long)]
        merchant: i64,
        file: PathBuf,
    },
    /// Start a server on SQLite with a generated demo merchant, and print how to call it.
    Demo {
        /// Address to listen on (default 127.0.0.1:5001).
        #[arg(long)]
        listen: Option<String>,
        /// Seed of the generated data set.
        #[arg(long, default_value_t = 42)]
        seed: u64,
    },
    /// Benchmarks.
    #[command(subcommand)]
    Bench(crate::bench::BenchCmd),
    /// Play an assistant (助手) device against a running server: accounts, fans, chats,
    /// task execution (docs/assistant-protocol.md). Prints one JSON summary line on stdout
    /// when it stops (--duration or Ctrl-C); progress goes to stderr.
    Simulate(SimulateArgs),
}

#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// The server: http://host:port (the gateway is at /assistant/ws).
    #[arg(long)]
    pub server: String,
    /// The device token from `juhe device create`.
    #[arg(long, env = "JUHE_DEVICE_TOKEN")]
    pub device_token: String,
    /// Operating accounts the device serves.
    #[arg(long, default_value_t = 3)]
    pub accounts: usize,
    /// Fans of each account (every tenth is a group chat).
    #[arg(long, default_value_t = 50)]
    pub fans: usize,
    /// Chat messages reported per second, all accounts together.
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// How long executing a task takes, in milliseconds.
    #[arg(long, default_value_t = 500)]
    pub task_latency_ms: u64,
    /// Share of send tasks (0..1) that fail with code `simulated_failure`.
    #[arg(long, default_value_t = 0.0)]
    pub task_failure_rate: f64,
    /// Chance (0..1) that a fan answers a message a task sent it.
    #[arg(long, default_value_t = 0.3)]
    pub reply_probability: f64,
    /// Cut the connection abruptly this often (seconds) and resume.
    #[arg(long)]
    pub drop_every: Option<f64>,
    /// Stop after this many seconds.
    #[arg(long)]
    pub duration: Option<f64>,
    /// Seed of the generated accounts, fans and messages.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

fn seconds(name: &str, s: f64) -> anyhow::Result<std::time::Duration> {
    std::time::Duration::try_from_secs_f64(s)
        .ok()
        .filter(|d| !d.is_zero())
        .with_context(|| format!("--{name} must be a positive number of seconds"))
}

fn share(name: &str, x: f64) -> anyhow::Result<f64> {
    if !(0.0..=1.0).contains(&x) {
        bail!("--{name} must be between 0 and 1");
    }
    Ok(x)
}

async fn simulate(a: SimulateArgs) -> anyhow::Result<()> {
    if !(a.rate.is_finite() && a.rate >= 0.0) {
        bail!("--rate must be a number of messages per second, 0 or more");
    }
    let cfg = crate::simulate::SimConfig {
        server: a.server,
        device_token: a.device_token,
        accounts: a.accounts,
        fans: a.fans,
        rate: a.rate,
        task_latency: std::time::Duration::from_millis(a.task_latency_ms),
        task_failure_rate: share("task-failure-rate", a.task_failure_rate)?,
        reply_probability: share("reply-probability", a.reply_probability)?,
        drop_every: a.drop_every.map(|s| seconds("drop-every", s)).transpose()?,
        duration: a.duration.map(|s| seconds("duration", s)).transpose()?,
        seed: a.seed,
        progress: true,
    };
    let signals = ShutdownSignals::register();
    let stop = tokio_util::sync::CancellationToken::new();
    signals.spawn_handler(stop.clone());
    let summary = crate::simulate::Simulator::new(cfg).run(stop).await?;
    print_json(&summary)
}

#[derive(Subcommand, Debug)]
pub enum MerchantCmd {
    /// Create a merchant; prints {"merchantId","clientId","clientSecret"}.
    Create {
        #[arg(long)]
        name: String,
    },
    /// List merchants.
    List,
    /// Issue another client id and secret for an existing merchant (the old ones stay valid).
    AddClient {
        #[arg(long)]
        merchant: i64,
    },
    /// Revoke a merchant's access, effective at once: every access token of the merchant,
    /// and every agent's link to it (agents need `juhe agent link` again). Client
    /// credentials stay valid.
    RevokeTokens {
        #[arg(long)]
        merchant: i64,
    },
    /// Print the merchant's webhook signing secret (`whsec_…`) alone on stdout, making it
    /// on first use; `--rotate` replaces it (the old one keeps signing for the grace period).
    WebhookSecret {
        #[arg(long)]
        merchant: i64,
        #[arg(long)]
        rotate: bool,
    },
}

#[derive(Subcommand, Debug)]
pub enum EventsCmd {
    /// A merchant's events in id order, one JSON object per line (as delivered).
    List {
        #[arg(long)]
        merchant: i64,
        /// Only events with a larger id.
        #[arg(long, default_value_t = 0)]
        after: i64,
        /// Only this event type (e.g. chat).
        #[arg(long = "type")]
        event_type: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// One event with where it stands at each endpoint.
    Show {
        #[arg(long)]
        merchant: i64,
        /// The event: `evt_…` or its number.
        event: String,
    },
    /// Every delivery attempt of an event, one JSON object per line.
    Attempts {
        #[arg(long)]
        merchant: i64,
        event: String,
    },
    /// Deliver again: one event (EVENT), or every event that failed since `--failed-since`
    /// (Unix seconds), to every subscribed endpoint or `--endpoint`.
    Replay {
        #[arg(long)]
        merchant: i64,
        event: Option<String>,
        #[arg(long)]
        failed_since: Option<i64>,
        #[arg(long)]
        endpoint: Option<i64>,
    },
}

#[derive(Subcommand, Debug)]
pub enum AgentCmd {
    /// Create an agent; prints {"agentId","clientId","clientSecret"}.
    Create {
        #[arg(long)]
        name: String,
    },
    /// Let an agent act for a merchant (with the TenantId header).
    Link {
        #[arg(long)]
        agent: i64,
        #[arg(long)]
        merchant: i64,
    },
    /// Stop an agent acting for a merchant, effective with its next request.
    Unlink {
        #[arg(long)]
        agent: i64,
        #[arg(long)]
        merchant: i64,
    },
    /// Revoke every access token of an agent.
    RevokeTokens {
        #[arg(long)]
        agent: i64,
    },
}

#[derive(Subcommand, Debug)]
pub enum DeviceCmd {
    /// Create a device for a merchant; prints {"deviceId","deviceToken"} (the token is shown once).
    Create {
        #[arg(long)]
        merchant: i64,
        #[arg(long, default_value = "assistant")]
        name: String,
    },
    /// List a merchant's devices, one JSON object per line.
    List {
        #[arg(long)]
        merchant: i64,
    },
    /// Revoke a device's token; its connections close at once and its accounts can be
    /// claimed by another device.
    Revoke {
        #[arg(long)]
        merchant: i64,
        #[arg(long)]
        device: i64,
    },
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn load_config(g: &Global, listen: Option<String>) -> anyhow::Result<Config> {
    let overrides = Overrides {
        listen,
        database_url: g.database.clone(),
        log_format: g.log_format.as_deref().map(|f| {
            if f == "json" {
                LogFormat::Json
            } else {
                LogFormat::Text
            }
        }),
    };
    Config::load(g.config.as_deref(), &overrides)
}

async fn open_store(cfg: &Config) -> anyhow::Result<Store> {
    Store::open(&cfg.database_url, cfg.db_max_connections).await
}

pub(crate) async fn merchant(store: &Store, id: i64) -> anyhow::Result<MerchantId> {
    store
        .admin()
        .merchant(id)
        .await?
        .with_context(|| format!("no merchant {id} (see `juhe merchant list`)"))
}

/// The file of a `sqlite:` database URL.
fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?.trim_start_matches("//");
    Some(PathBuf::from(rest.split('?').next().unwrap_or(rest)))
}

fn print_json(v: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string(v)?);
    Ok(())
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Command::DefaultConfig = cli.command {
        print!("{DEFAULT_CONFIG}");
        return Ok(());
    }
    let listen = match &cli.command {
        Command::Serve { listen } | Command::Demo { listen, .. } => listen.clone(),
        _ => None,
    };
    let mut cfg = load_config(&cli.global, listen)?;
    if let Command::Demo { .. } = cli.command {
        // The demo has its own database unless one is chosen explicitly.
        if cli.global.database.is_none() && std::env::var_os("JUHE_DATABASE_URL").is_none() {
            cfg.database_url = "sqlite://data/demo.db".into();
        }
    }
    // A benchmark measures the API, not the access log, and the simulator's stderr is its
    // progress; RUST_LOG still overrides.
    let filter = if matches!(cli.command, Command::Bench(_) | Command::Simulate(_)) {
        "warn"
    } else {
        cfg.log_filter.as_str()
    };
    init_logging(cfg.log_format, filter);
    match cli.command {
        Command::DefaultConfig => unreachable!("handled above"),
        Command::Serve { .. } => serve(cfg).await,
        Command::Migrate => {
            let store = open_store(&cfg).await?;
            store.close().await;
            eprintln!("migrations applied");
            Ok(())
        }
        Command::Backup { to, force } => {
            // Opening creates a missing SQLite file; a backup of a mistyped path must say so
            // rather than copy a new, empty database.
            if let Some(path) = sqlite_path(&cfg.database_url) {
                if !path.exists() {
                    bail!("no database at {}: nothing to back up", path.display());
                }
            }
            let store = open_store(&cfg).await?;
            let r = store.backup_to(&to, force).await;
            store.close().await;
            let bytes = r?;
            print_json(&serde_json::json!({"backup": to, "bytes": bytes}))
        }
        Command::Merchant(cmd) => {
            let store = open_store(&cfg).await?;
            let admin = store.admin();
            match cmd {
                MerchantCmd::Create { name } => {
                    if name.trim().is_empty() {
                        bail!("--name must not be empty");
                    }
                    print_json(&admin.create_merchant(name.trim()).await?)?
                }
                MerchantCmd::List => print_json(&admin.list_merchants().await?)?,
                MerchantCmd::AddClient { merchant: id } => {
                    let m = merchant(&store, id).await?;
                    print_json(&admin.add_merchant_client(m).await?)?
                }
                MerchantCmd::RevokeTokens { merchant: id } => {
                    let m = merchant(&store, id).await?;
                    let r = admin.revoke_merchant_access(m).await?;
                    print_json(
                        &serde_json::json!({"merchantId": id, "revokedTokens": r.tokens, "unlinkedAgents": r.agent_links}),
                    )?
                }
                MerchantCmd::WebhookSecret {
                    merchant: id,
                    rotate,
                } => {
                    use juhe::webhooks::sign::generate_secret;
                    let m = merchant(&store, id).await?;
                    let t = store.tenant(m);
                    let s = if rotate {
                        t.rotate_webhook_secret(
                            generate_secret(),
                            cfg.webhooks.secret_grace_seconds,
                        )
                        .await?
                    } else {
                        t.webhook_secret(generate_secret).await?
                    };
                    println!("{}", s.secret);
                }
            }
            store.close().await;
            Ok(())
        }
        Command::Events(cmd) => {
            let store = open_store(&cfg).await?;
            let r = crate::events::run(&store, &cfg, cmd).await;
            store.close().await;
            r
        }
        Command::Agent(cmd) => {
            let store = open_store(&cfg).await?;
            let admin = store.admin();
            match cmd {
                AgentCmd::Create { name } => {
                    if name.trim().is_empty() {
                        bail!("--name must not be empty");
                    }
                    print_json(&admin.create_agent(name.trim()).await?)?
                }
                AgentCmd::Link {
                    agent,
                    merchant: id,
                } => {
                    if !admin.agent_exists(agent).await? {
                        bail!("no agent {agent}");
                    }
                    let m = merchant(&store, id).await?;
                    admin.link_agent(agent, m).await?;
                    print_json(
                        &serde_json::json!({"agentId": agent, "merchantId": id, "linked": true}),
                    )?
                }
                AgentCmd::Unlink {
                    agent,
                    merchant: id,
                } => {
                    if !admin.agent_exists(agent).await? {
                        bail!("no agent {agent}");
                    }
                    let m = merchant(&store, id).await?;
                    let was = admin.unlink_agent(agent, m).await?;
                    print_json(
                        &serde_json::json!({"agentId": agent, "merchantId": id, "linked": false, "wasLinked": was}),
                    )?
                }
                AgentCmd::RevokeTokens { agent } => {
                    let n = admin.revoke_agent_tokens(agent).await?;
                    print_json(&serde_json::json!({"agentId": agent, "revokedTokens": n}))?
                }
            }
            store.close().await;
            Ok(())
        }
        Command::Device(cmd) => {
            let store = open_store(&cfg).await?;
            let admin = store.admin();
            match cmd {
                DeviceCmd::Create { merchant: id, name } => {
                    if name.trim().is_empty() {
                        bail!("--name must not be empty");
                    }
                    let m = merchant(&store, id).await?;
                    print_json(&admin.create_device(m, name.trim()).await?)?
                }
                DeviceCmd::List { merchant: id } => {
                    let m = merchant(&store, id).await?;
                    for d in admin.devices(m).await? {
                        print_json(&d)?;
                    }
                }
                DeviceCmd::Revoke {
                    merchant: id,
                    device,
                } => {
                    let m = merchant(&store, id).await?;
                    let revoked = admin.revoke_device(m, device).await?;
                    if !revoked
                        && !admin
                            .devices(m)
                            .await?
                            .iter()
                            .any(|d| d.device_id == device)
                    {
                        bail!("merchant {id} has no device {device}");
                    }
                    print_json(
                        &serde_json::json!({"deviceId": device, "revoked": true, "wasActive": revoked}),
                    )?
                }
            }
            store.close().await;
            Ok(())
        }
        Command::Import { merchant: id, file } => {
            let store = open_store(&cfg).await?;
            let m = merchant(&store, id).await?;
            let data = read_import_file(&file)?;
            let summary = import_with_progress(&store, m, &data, cfg.offset()?).await?;
            print_json(&summary)?;
            store.close().await;
            Ok(())
        }
        Command::Demo { seed, .. } => demo(cfg, seed).await,
        Command::Bench(cmd) => crate::bench::run(cmd, cfg).await,
        Command::Simulate(args) => simulate(args).await,
    }
}

async fn serve(cfg: Config) -> anyhow::Result<()> {
    let signals = ShutdownSignals::register();
    let app = Application::build(cfg).await?;
    signals.spawn_handler(app.shutdown_token());
    app.run().await
}

/// Parses an import file, naming the bad record on failure (e.g. `chats[12].ad_chatting_issend`).
pub fn read_import_file(path: &Path) -> anyhow::Result<ImportFile> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    parse_import(&bytes).with_context(|| format!("in {}", path.display()))
}

pub fn parse_import(bytes: &[u8]) -> anyhow::Result<ImportFile> {
    ImportFile::from_json(bytes)
}

/// Imports with a progress bar on stderr when it is a terminal and the file is large.
pub async fn import_with_progress(
    store: &Store,
    m: MerchantId,
    data: &ImportFile,
    offset: chrono::FixedOffset,
) -> anyhow::Result<ImportSummary> {
    let total = data.total_records();
    let bar = if total >= 2000 && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new(total);
        b.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} importing [{bar:40}] {pos}/{len} records ({eta})",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let progress = |n: u64| bar.inc(n);
    let r = juhe::core::import::import(store.tenant(m), data, offset, &progress).await;
    bar.finish_and_clear();
    match r {
        Ok(s) => Ok(s),
        Err(ImportError::Invalid(msg)) => bail!("nothing was imported: {msg}"),
        Err(ImportError::Db(e)) => {
            Err(anyhow::Error::new(e).context("nothing was imported: database error"))
        }
    }
}

const DEMO_MERCHANT: &str = "演示商户 Demo";
/// The name of the demo's simulated assistant device.
const DEMO_DEVICE: &str = "演示助手 demo assistant";

async fn demo(cfg: Config, seed: u64) -> anyhow::Result<()> {
    let signals = ShutdownSignals::register();
    let offset = cfg.offset()?;
    let db = juhe::store::redact(&cfg.database_url);
    let store = open_store(&cfg).await?;
    // Bind before anything is written: a start that fails (the port is taken) must leave
    // no merchant and no credentials behind.
    let app = Application::with_store(cfg, store).await?;
    let store = app.store().clone();
    let admin = store.admin();
    let existing = admin
        .list_merchants()
        .await?
        .into_iter()
        .find(|m| m.name == DEMO_MERCHANT);
    // Local midnight today, as wall-clock seconds: the data ends there, so the default
    // report range (the last 30 days) shows numbers, and a rerun the same day imports
    // exactly the same records.
    let local_now = juhe::store::now() + i64::from(offset.local_minus_utc());
    let reference = local_now - local_now.rem_euclid(86_400);
    let data =
        crate::demo_data::generate_until(seed, crate::demo_data::DemoScale::demo(), reference);
    let (m, creds, reused) = match existing {
        Some(row) => {
            let m = merchant(&store, row.id).await?;
            (m, None, Some(row.id))
        }
        None => {
            let creds = admin.create_merchant(DEMO_MERCHANT).await?;
            (
                merchant(&store, creds.merchant_id).await?,
                Some(creds),
                None,
            )
        }
    };
    let summary = import_with_progress(&store, m, &data, offset).await?;
    let changed: u64 = summary.values().map(|k| k.changed).sum();
    // Credentials last, once everything else has worked.
    let creds = match creds {
        Some(c) => c,
        None => admin.add_merchant_client(m).await?,
    };
    // A simulated assistant (助手) for the demo merchant, so GetChat grows while the user
    // watches and a message sent with doSendPublicMes is executed and answered. A new
    // device each run (only a token's hash is stored, so an old one cannot be reused);
    // the previous runs' devices are revoked so they do not pile up as live credentials.
    for d in admin.devices(m).await? {
        if d.name == DEMO_DEVICE && d.revoked_at.is_none() {
            admin.revoke_device(m, d.device_id).await?;
        }
    }
    let device = admin.create_device(m, DEMO_DEVICE).await?;
    let addr = app.local_addr();
    let base = format!("http://{addr}");
    let mut sim = crate::simulate::SimConfig::new(base.clone(), device.device_token);
    sim.accounts = 3;
    sim.fans = 20;
    sim.rate = 2.0;
    sim.task_latency = std::time::Duration::from_millis(800);
    sim.reply_probability = 1.0;
    sim.seed = seed;
    signals.spawn_handler(app.shutdown_token());
    let sim_stop = app.shutdown_token().child_token();
    let server = tokio::spawn(app.run());
    let simulator = tokio::spawn(crate::simulate::Simulator::new(sim).run(sim_stop.clone()));
    // The live conversation to show: the simulator's first account and fan, once the
    // account has reported itself (it is created then).
    let live_account = crate::simulate::account_wxid(seed, device.device_id, 1);
    let live_fan = format!("{live_account}_f1");
    let mut live_wechat_id = None;
    for _ in 0..100 {
        let accounts = store.tenant(m).device_accounts(device.device_id).await?;
        if let Some((id, _)) = accounts.iter().find(|(_, o)| *o == live_account) {
            live_wechat_id = Some(*id);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (wechat_id, fans_key) = data
        .chats
        .first()
        .map(|c| (c.ad_wechat_id, c.ad_chatting_talter.clone()))
        .unwrap_or_default();
    println!("Juhe demo is running on {base} ({db}). Ctrl-C stops it.");
    println!();
    match reused {
        Some(id) if changed == 0 => println!(
            "Reusing {db}: demo merchant {id} exists and already has this data (importing again changed nothing). New credentials were issued below; earlier ones stay valid."
        ),
        Some(id) => println!(
            "Reusing {db}: demo merchant {id} exists; importing again updated {changed} records (chats already stored are kept, not duplicated). New credentials were issued below; earlier ones stay valid. Delete the database file for a fresh demo."
        ),
        None => println!("Created demo merchant {} in {db}.", creds.merchant_id),
    }
    println!("Imported: {}", serde_json::to_string(&summary)?);
    println!();
    println!("Demo merchant credentials:");
    println!("{}", serde_json::to_string_pretty(&creds)?);
    println!();
    println!("Get a token:");
    println!(
        "  TOKEN=$(curl -s {base}/connect/token -d grant_type=client_credentials -d scope=Ls.Qkl.PublicApi -d client_id={} -d client_secret={} | sed -E 's/.*\"access_token\":\"([^\"]+)\".*/\\1/')",
        creds.client_id, creds.client_secret
    );
    println!();
    println!("Read a conversation:");
    println!(
        "  curl -s {base}/v2/ChatMess/GetChat -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"wechatId\": {wechat_id}, \"fansKey\": \"{fans_key}\", \"minChattingId\": 0, \"pageSize\": \"20\", \"pageIndex\": \"1\"}}'"
    );
    println!();
    match live_wechat_id {
        Some(live) => {
            println!(
                "A simulated assistant (device {}) is online: 3 operating accounts, 20 fans each, about two messages a second. Watch one account's chats arrive:",
                device.device_id
            );
            println!(
                "  curl -s {base}/v2/ChatMess/GetChatFeed -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"wechatId\": {live}, \"minChattingId\": 0, \"pageSize\": 50}}'"
            );
            println!();
            println!("Send one of its fans a message; the assistant sends it within a second or two and the fan answers:");
            println!(
                "  curl -s {base}/v2/ChatMess/doSendPublicMes -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"WechatId\": {live}, \"ToUserName\": \"{live_fan}\", \"RelationType\": 0, \"MsgType\": \"text\", \"Text\": \"您好,这是一条演示消息\"}}'"
            );
            println!("Then read that conversation:");
            println!(
                "  curl -s {base}/v2/ChatMess/GetChat -H \"Authorization: Bearer $TOKEN\" -H 'Content-Type: application/json' -d '{{\"wechatId\": {live}, \"fansKey\": \"{live_fan}\", \"minChattingId\": 0, \"pageSize\": \"50\", \"pageIndex\": \"1\"}}'"
            );
        }
        None => println!(
            "The simulated assistant did not come online within 10 s; the API works without it."
        ),
    }
    println!();
    println!("API reference: {base}/docs   OpenAPI: {base}/openapi.json   Metrics: {base}/metrics");
    let served = server
        .await
        .map_err(|e| anyhow::anyhow!("the server task failed: {e}"))?;
    sim_stop.cancel();
    match tokio::time::timeout(std::time::Duration::from_secs(5), simulator).await {
        Ok(Ok(Ok(s))) => eprintln!("simulated assistant: {}", serde_json::to_string(&s)?),
        Ok(Ok(Err(e))) => eprintln!("simulated assistant stopped: {e:#}"),
        _ => {}
    }
    served
}
