//! `juhe bench getchat`: builds (or reuses) a large store and drives GetChat over real
//! loopback HTTP, reporting throughput, latency percentiles and server memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Subcommand;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

use crate::loadgen::{self, LoadPlan, LoadReport, Mode, Target};
use juhe::app::Application;
use juhe::config::Config;
use juhe::store::chats::{ChatFilter, NewChat};
use juhe::store::import::{ImpChat, ImpFan, ImpWechat, ImportFile};
use juhe::store::{MerchantId, Page, Store};

#[derive(Subcommand, Debug)]
pub enum BenchCmd {
    /// GetChat throughput and latency over HTTP.
    Getchat(GetchatArgs),
    /// Chat writing throughput: imports a generated history into a new merchant (or
    /// records it in batches through `core::chats::record`, as the gateway will).
    Ingest(IngestArgs),
    /// Chats reported by simulated assistants over the gateway (server as a child process).
    GatewayIngest(crate::bench_gateway::GatewayIngestArgs),
    /// Assistant connections held open with heartbeats: the server's memory.
    GatewayConnections(crate::bench_gateway::GatewayConnectionsArgs),
    /// doSendPublicMes → assistant → result committed: round-trip latency at a fixed rate.
    GatewaySend(crate::bench_gateway::GatewaySendArgs),
    /// Webhook deliveries to a local receiver: a backlog's drain (rate, server memory,
    /// GetChat beside it), then chats reported at a rate, timed to their arrival.
    Events(crate::bench_events::EventsArgs),
}

#[derive(clap::Args, Debug, Clone)]
pub struct IngestArgs {
    /// Chats to write.
    #[arg(long, default_value_t = 200_000)]
    pub chats: usize,
    /// Fans (conversations) the chats are spread over, all on one operating account.
    #[arg(long, default_value_t = 1_000)]
    pub fans: usize,
    /// 0: one `juhe import` of the whole file (one transaction). N > 0: `core::chats::record`
    /// calls of N chats each, one transaction per call.
    #[arg(long, default_value_t = 0)]
    pub batch: usize,
    /// Then write the same chats again and time that too (every one is a duplicate).
    #[arg(long)]
    pub again: bool,
}

#[derive(Serialize)]
struct IngestReport {
    backend: String,
    mode: String,
    chats: usize,
    fans: usize,
    /// Chats already in the store (all merchants) before this run.
    chats_before: i64,
    seconds: f64,
    chats_per_second: f64,
    again_seconds: Option<f64>,
    again_chats_per_second: Option<f64>,
}

#[derive(clap::Args, Debug, Clone)]
pub struct GetchatArgs {
    /// Merchants in the store.
    #[arg(long, default_value_t = 100)]
    pub merchants: usize,
    /// Chats in the store, spread evenly over the merchants.
    #[arg(long, default_value_t = 1_000_000)]
    pub chats: usize,
    /// Conversations (fans) per merchant.
    #[arg(long, default_value_t = 50)]
    pub fans_per_merchant: usize,
    /// Concurrent clients of the closed-loop (maximum throughput) run.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Requests per second of the fixed-rate (latency) run.
    #[arg(long, default_value_t = 1000)]
    pub rate: u64,
    /// Seconds each run measures (after a 3 s warm-up).
    #[arg(long, default_value_t = 15)]
    pub seconds: u64,
    /// GetChat page size.
    #[arg(long, default_value_t = 50)]
    pub page_size: i64,
    /// Instead of driving the load itself, serve on this address and write a wrk script
    /// (`getchat.lua`, with tokens and request bodies) for an external load generator;
    /// runs until Ctrl-C / SIGTERM.
    #[arg(long)]
    pub external: Option<String>,
}

#[derive(Serialize)]
struct BenchReport {
    backend: String,
    merchants: usize,
    chats: i64,
    load_seconds: Option<f64>,
    closed_loop: LoadReport,
    closed_loop_concurrency: usize,
    fixed_rate: LoadReport,
    fixed_rate_target: u64,
    rss_mb: Option<f64>,
    peak_rss_mb: Option<f64>,
}

pub async fn run(cmd: BenchCmd, mut cfg: Config) -> anyhow::Result<()> {
    match cmd {
        BenchCmd::Getchat(args) => {
            // The benchmark measures the API, not the limiter or the access log.
            cfg.rate_limit.per_second = 0;
            // It takes a token per merchant (100 by default) from one address.
            cfg.auth.token_per_ip_per_minute = 0;
            cfg.listen = args
                .external
                .clone()
                .unwrap_or_else(|| "127.0.0.1:0".into());
            if std::env::var_os("JUHE_DATABASE_URL").is_none()
                && cfg.database_url == "sqlite://data/juhe.db"
            {
                cfg.database_url = "sqlite://data/bench.db".into();
            }
            getchat(args, cfg).await
        }
        BenchCmd::Ingest(args) => {
            if std::env::var_os("JUHE_DATABASE_URL").is_none()
                && cfg.database_url == "sqlite://data/juhe.db"
            {
                cfg.database_url = "sqlite://data/bench-ingest.db".into();
            }
            ingest(args, cfg).await
        }
        BenchCmd::GatewayIngest(args) => {
            default_bench_db(&mut cfg, "bench-gateway.db");
            crate::bench_gateway::gateway_ingest(args, cfg).await
        }
        BenchCmd::GatewayConnections(args) => {
            default_bench_db(&mut cfg, "bench-gateway.db");
            crate::bench_gateway::gateway_connections(args, cfg).await
        }
        BenchCmd::GatewaySend(args) => {
            default_bench_db(&mut cfg, "bench-gateway.db");
            crate::bench_gateway::gateway_send(args, cfg).await
        }
        BenchCmd::Events(args) => {
            default_bench_db(&mut cfg, "bench-events.db");
            crate::bench_events::events(args, cfg).await
        }
    }
}

/// Benchmarks never write into the default database of `juhe serve`.
fn default_bench_db(cfg: &mut Config, file: &str) {
    if std::env::var_os("JUHE_DATABASE_URL").is_none()
        && cfg.database_url == "sqlite://data/juhe.db"
    {
        cfg.database_url = format!("sqlite://data/{file}");
    }
}

/// Local `yyyy-MM-dd HH:mm:ss` for an import file.
fn local_time(t: i64, off: chrono::FixedOffset) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .with_timezone(&off)
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// Writes the chats once (the whole file, or `core::chats::record` batches); returns how many
/// were new and the seconds it took.
async fn write_chats(
    tenant: &juhe::store::Tenant<'_>,
    file: Option<&ImportFile>,
    chats: &[NewChat],
    batch: usize,
    off: chrono::FixedOffset,
) -> anyhow::Result<(usize, f64)> {
    let started = Instant::now();
    let written = match file {
        Some(f) => {
            juhe::core::import::import(*tenant, f, off, &|_| {})
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?["chats"]
                .changed as usize
        }
        None => {
            let mut n = 0;
            for b in chats.chunks(batch.max(1)) {
                n += juhe::core::chats::record(*tenant, b).await?.len();
            }
            n
        }
    };
    Ok((written, started.elapsed().as_secs_f64()))
}

async fn ingest(args: IngestArgs, cfg: Config) -> anyhow::Result<()> {
    if args.fans == 0 {
        anyhow::bail!("--fans must be at least 1");
    }
    let store = Store::open(&cfg.database_url, cfg.db_max_connections).await?;
    let chats_before = count_chats(&store).await?;
    let off = cfg.offset()?;
    let admin = store.admin();
    let creds = admin
        .create_merchant(&format!("ingest-{}", chrono::Utc::now().timestamp_millis()))
        .await?;
    let m = admin
        .merchant(creds.merchant_id)
        .await?
        .context("merchant vanished")?;
    let wechat_id = 1;
    let org = one_account_org(
        wechat_id,
        "ingest_op",
        "客服",
        "wxid_ingest_fan_",
        args.fans,
    );
    let tenant = store.tenant(m);
    juhe::core::import::import(tenant, &org, off, &|_| {})
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut rng = StdRng::seed_from_u64(3);
    let base_time = 1_714_000_000_i64;
    let chats: Vec<NewChat> = (0..args.chats)
        .map(|c| NewChat {
            wechat_id,
            talker: format!("wxid_ingest_fan_{}", rng.gen_range(0..args.fans)),
            issend: i64::from(rng.gen_bool(0.5)),
            msg_type: 1,
            content: TEXTS[rng.gen_range(0..TEXTS.len())].to_owned(),
            resvred: None,
            sermsgid: format!("{}{:012}", 8_000_000, c),
            chat_time: base_time + c as i64 * 3,
            staff_code: None,
            voice_txt: None,
            expand: String::new(),
        })
        .collect();
    let file = (args.batch == 0).then(|| ImportFile {
        chats: chats
            .iter()
            .map(|c| ImpChat {
                ad_wechat_id: c.wechat_id,
                ad_chatting_talter: c.talker.clone(),
                ad_chatting_issend: c.issend,
                ad_chatting_sate: c.msg_type,
                ad_chatting_content: c.content.clone(),
                ad_chatting_resvred: None,
                ad_sermsgid: c.sermsgid.clone(),
                ad_chatting_time: local_time(c.chat_time, off),
                ad_staff_code: None,
                ad_voice_txt: None,
                ad_expand: None,
            })
            .collect(),
        ..Default::default()
    });
    eprintln!("writing {} chats ({:?}) …", args.chats, store.backend());
    let (written, seconds) = write_chats(&tenant, file.as_ref(), &chats, args.batch, off).await?;
    anyhow::ensure!(
        written == args.chats,
        "wrote {written} of {} chats",
        args.chats
    );
    let again = if args.again {
        eprintln!("writing them again …");
        let (n, s) = write_chats(&tenant, file.as_ref(), &chats, args.batch, off).await?;
        anyhow::ensure!(n == 0, "{n} duplicates were written");
        Some(s)
    } else {
        None
    };
    let report = IngestReport {
        backend: format!("{:?}", store.backend()).to_lowercase(),
        mode: if args.batch == 0 {
            "import".into()
        } else {
            format!("core::chats::record batches of {}", args.batch)
        },
        chats: args.chats,
        fans: args.fans,
        chats_before,
        seconds,
        chats_per_second: args.chats as f64 / seconds,
        again_seconds: again,
        again_chats_per_second: again.map(|s| args.chats as f64 / s),
    };
    store.close().await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

fn bench_name(i: usize) -> String {
    format!("bench-{i:03}")
}

const TEXTS: &[&str] = &[
    "你好，请问我的订单发货了吗？",
    "您好，已经为您安排发货了。",
    "这个尺码偏大还是偏小？",
    "建议按平时尺码购买。",
    "可以开发票吗？",
    "可以的，请提供抬头和税号。",
    "收到了，谢谢！",
    "好的，有问题随时联系我们。",
];

/// Creates the benchmark merchants and chats unless they are already there.
async fn ensure_data(
    store: &Store,
    cfg: &Config,
    args: &GetchatArgs,
) -> anyhow::Result<(Vec<MerchantId>, Option<f64>)> {
    let admin = store.admin();
    let existing: Vec<_> = admin
        .list_merchants()
        .await?
        .into_iter()
        .filter(|m| m.name.starts_with("bench-"))
        .collect();
    let per_merchant = args.chats / args.merchants.max(1);
    if existing.len() == args.merchants {
        let mut ids = Vec::new();
        for m in &existing {
            ids.push(admin.merchant(m.id).await?.context("merchant vanished")?);
        }
        let n = count_chats(store).await?;
        if n as usize >= per_merchant * args.merchants {
            eprintln!("reusing the benchmark data already in the store ({n} chats)");
            return Ok((ids, None));
        }
    }
    if !existing.is_empty() {
        anyhow::bail!("the store holds a different benchmark data set; use a fresh database (e.g. delete data/bench.db)");
    }
    let started = Instant::now();
    let off = cfg.offset()?;
    let bar = indicatif::ProgressBar::new((per_merchant * args.merchants) as u64);
    bar.set_style(
        indicatif::ProgressStyle::with_template("loading chats [{bar:40}] {pos}/{len} ({eta})")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut ids = Vec::new();
    let mut rng = StdRng::seed_from_u64(7);
    let base_time = 1_714_000_000_i64;
    for i in 0..args.merchants {
        let creds = admin.create_merchant(&bench_name(i)).await?;
        let m = admin
            .merchant(creds.merchant_id)
            .await?
            .context("merchant vanished")?;
        let wechat_id = 100_000 + i as i64;
        let file = one_account_org(
            wechat_id,
            &format!("bench_op_{i}"),
            &format!("客服{i}"),
            "wxid_bench_fan_",
            args.fans_per_merchant,
        );
        juhe::core::import::import(store.tenant(m), &file, off, &|_| {})
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let mut batch = Vec::with_capacity(5000);
        for c in 0..per_merchant {
            let issend = i64::from(rng.gen_bool(0.5));
            batch.push(NewChat {
                wechat_id,
                talker: format!(
                    "wxid_bench_fan_{}",
                    rng.gen_range(0..args.fans_per_merchant)
                ),
                issend,
                msg_type: 1,
                content: TEXTS[rng.gen_range(0..TEXTS.len())].to_owned(),
                resvred: None,
                sermsgid: format!("{}{:012}", 7_000_000 + i, c),
                chat_time: base_time + c as i64 * 7,
                staff_code: None,
                voice_txt: None,
                expand: String::new(),
            });
            if batch.len() == 5000 {
                juhe::core::chats::record(store.tenant(m), &batch).await?;
                bar.inc(batch.len() as u64);
                batch.clear();
            }
        }
        if !batch.is_empty() {
            juhe::core::chats::record(store.tenant(m), &batch).await?;
            bar.inc(batch.len() as u64);
        }
        ids.push(m);
    }
    bar.finish_and_clear();
    Ok((ids, Some(started.elapsed().as_secs_f64())))
}

async fn count_chats(store: &Store) -> anyhow::Result<i64> {
    Ok(store.admin().count_all_chats().await?)
}

/// Writes `getchat.lua` for wrk and serves until a shutdown signal.
async fn serve_external(
    base: &str,
    targets: &[Target],
    token: tokio_util::sync::CancellationToken,
    server: tokio::task::JoinHandle<anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let signal = juhe::app::shutdown_signal();
    let mut lua = String::from("-- Generated by `juhe bench getchat --external`: GetChat requests, round-robin.\nlocal reqs = {}\n");
    for t in targets {
        lua.push_str(&format!(
            "reqs[#reqs + 1] = {{ {:?}, {:?} }}\n",
            t.token, t.body
        ));
    }
    lua.push_str(
        "local n = 0\nrequest = function()\n  n = n + 1\n  local r = reqs[(n % #reqs) + 1]\n  \
         return wrk.format(\"POST\", \"/v2/ChatMess/GetChat\", {[\"Authorization\"] = \"Bearer \" .. r[1], [\"Content-Type\"] = \"application/json\"}, r[2])\nend\n",
    );
    std::fs::write("getchat.lua", lua)?;
    eprintln!("serving on {base}; wrote getchat.lua. Example:\n  wrk -t1 -c32 -d10s --latency -s getchat.lua {base}\nCtrl-C stops.");
    signal.await;
    token.cancel();
    let _ = server.await;
    Ok(())
}

fn rss_mb(field: &str) -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

async fn getchat(args: GetchatArgs, cfg: Config) -> anyhow::Result<()> {
    if args.merchants == 0 || args.fans_per_merchant == 0 {
        anyhow::bail!("--merchants and --fans-per-merchant must be at least 1");
    }
    let store = Store::open(&cfg.database_url, cfg.db_max_connections).await?;
    let (merchants, load_seconds) = ensure_data(&store, &cfg, &args).await?;
    let chats = count_chats(&store).await?;
    eprintln!(
        "store: {chats} chats across {} merchants ({:?})",
        merchants.len(),
        store.backend()
    );

    // Pick cursors that land inside real conversations, so each request returns a full page.
    let mut rng = StdRng::seed_from_u64(11);
    let mut cursors = Vec::new();
    for _ in 0..2000 {
        let m = merchants[rng.gen_range(0..merchants.len())];
        let wechat_id = 100_000 + (m.get() - merchants[0].get());
        let fan = format!(
            "wxid_bench_fan_{}",
            rng.gen_range(0..args.fans_per_merchant)
        );
        let f = ChatFilter {
            wechat_id,
            fans_key: fan.clone(),
            ..Default::default()
        };
        let rows = store
            .tenant(m)
            .chats_page(
                &f,
                Page {
                    index: 1,
                    size: 1000,
                },
            )
            .await?
            .rows;
        let usable = rows.len().saturating_sub(args.page_size as usize);
        let min = if usable == 0 {
            0
        } else {
            rows[rng.gen_range(0..usable)].chat_id
        };
        cursors.push((m, wechat_id, fan, min));
    }

    let app = Application::with_store(cfg, store.clone()).await?;
    let base = format!("http://{}", app.local_addr());
    let token = app.shutdown_token();
    let server = tokio::spawn(app.run());

    let client = reqwest::Client::new();
    let mut tokens = std::collections::HashMap::new();
    for &m in &merchants {
        let creds = store.admin().add_merchant_client(m).await?;
        let resp: serde_json::Value = client
            .post(format!("{base}/connect/token"))
            .form(&[
                ("grant_type", "client_credentials"),
                ("scope", "Ls.Qkl.PublicApi"),
                ("client_id", &creds.client_id),
                ("client_secret", &creds.client_secret),
            ])
            .send()
            .await?
            .json()
            .await?;
        tokens.insert(
            m,
            resp["access_token"]
                .as_str()
                .context("no token")?
                .to_owned(),
        );
    }
    let targets: Vec<Target> = cursors
        .iter()
        .map(|(m, w, fan, min)| Target {
            token: tokens[m].clone(),
            body: serde_json::json!({"wechatId": w, "fansKey": fan, "minChattingId": min, "pageSize": args.page_size.to_string(), "pageIndex": "1"}).to_string(),
        })
        .collect();
    if args.external.is_some() {
        return serve_external(&base, &targets, token, server).await;
    }
    let targets = Arc::new(targets);
    let url = format!("{base}/v2/ChatMess/GetChat");
    let warmup = Duration::from_secs(3);
    let duration = Duration::from_secs(args.seconds);

    eprintln!(
        "closed loop: {} clients for {} s …",
        args.concurrency, args.seconds
    );
    let closed = loadgen::run(
        &LoadPlan {
            url: url.clone(),
            mode: Mode::ClosedLoop {
                concurrency: args.concurrency,
            },
            duration,
            warmup,
        },
        targets.clone(),
    )
    .await?;
    eprintln!("  {}", closed.summary_line());
    eprintln!(
        "fixed rate: {} requests/s for {} s …",
        args.rate, args.seconds
    );
    let fixed = loadgen::run(
        &LoadPlan {
            url,
            mode: Mode::FixedRate {
                rate: args.rate,
                max_in_flight: 256,
            },
            duration,
            warmup,
        },
        targets,
    )
    .await?;
    eprintln!("  {}", fixed.summary_line());

    let report = BenchReport {
        backend: format!("{:?}", store.backend()).to_lowercase(),
        merchants: merchants.len(),
        chats,
        load_seconds,
        closed_loop: closed,
        closed_loop_concurrency: args.concurrency,
        fixed_rate: fixed,
        fixed_rate_target: args.rate,
        rss_mb: rss_mb("VmRSS:"),
        peak_rss_mb: rss_mb("VmHWM:"),
    };
    token.cancel();
    let _ = server.await;
    println!("{}", serde_json::to_string_pretty(&report)?);
    Ok(())
}

/// A benchmark merchant's organisation: one operating account (`nober`, original id
/// `wxid_<nober>`) with `fans` fans keyed `<fan_prefix><n>`.
pub(crate) fn one_account_org(
    wechat_id: i64,
    nober: &str,
    nick: &str,
    fan_prefix: &str,
    fans: usize,
) -> ImportFile {
    ImportFile {
        wechats: vec![ImpWechat {
            ad_wechat_id: wechat_id,
            ad_wechat_nober: nober.to_owned(),
            ad_wechat_nick: nick.to_owned(),
            ad_original_nober: format!("wxid_{nober}"),
            ad_wechat_lei: 0,
            ad_staff_code: None,
            ad_wechat_addtime: "2024-01-01 09:00:00".into(),
        }],
        fans: (0..fans)
            .map(|f| ImpFan {
                ad_friend_wenober: format!("{fan_prefix}{f}"),
                ad_friend_uwenober: String::new(),
                ad_friend_name: format!("粉丝{f}"),
                ad_friend_photo: String::new(),
                ad_wechat_id: wechat_id,
                ad_staff_code: None,
                ad_relation_scene: 30,
                ad_relation_state: 0,
                ad_relation_isflock: 0,
                ad_friend_addtime: "2024-01-02 09:00:00".into(),
                ad_bind_time: None,
            })
            .collect(),
        ..Default::default()
    }
}
