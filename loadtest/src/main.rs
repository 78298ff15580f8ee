//! `omnibiz-loadtest`: drives OmniBiz Messaging (or the Node.js reference
//! peer, which speaks the same Socket.IO events) and reports what a user can
//! measure: connections held, their server memory and connect time, delivered
//! messages per second and per server CPU-second, end-to-end latency
//! percentiles, losses, and the database's CPU per stored message.
//!
//! Scenarios: `connections`, `fanout`, `room` (one sender, N receivers), `rest-send`, `ramp`
//! (socket or REST senders), `forwarding`,
//! `redis-raw`, `raw-insert`, `soak`;
//! `report` turns result files into `BENCHMARKS.md` tables and an SVG plot.

use omnibiz_loadtest::{connections, fanout, forwarding, notify, raw_insert, redis_raw, report, soak, tokens};

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

#[derive(Parser)]
#[command(
    name = "omnibiz-loadtest",
    version,
    about = "Load generator for OmniBiz Messaging and the Node.js reference peer"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct Common {
    /// Tokens file from `omnibiz seed --tokens-out`.
    #[arg(long)]
    tokens: PathBuf,
    /// Server PIDs whose RSS and CPU to sample (comma-separated).
    #[arg(long, value_delimiter = ',')]
    pids: Vec<u32>,
    /// Name of the system under test in the results (e.g. `omnibiz`, `node-peer`).
    #[arg(long, default_value = "omnibiz")]
    label: String,
    /// Append the result as one JSON line to this file.
    #[arg(long)]
    out: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Cmd {
    /// Open N authenticated clients, each joined to its conversation; report memory and CPU per connection.
    Connections {
        #[command(flatten)]
        common: Common,
        /// Gateway URLs; clients are spread round-robin.
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        #[arg(long)]
        count: usize,
        /// Load-generator processes (each holds at most ~19k sockets here).
        #[arg(long, default_value_t = 1)]
        workers: usize,
        /// Loopback source addresses to spread sockets over (comma-separated).
        #[arg(long, value_delimiter = ',')]
        sources: Vec<IpAddr>,
        /// Connection attempts in flight per worker.
        #[arg(long, default_value_t = 200)]
        concurrency: usize,
        /// Seconds to wait after the last connect before sampling the servers.
        #[arg(long, default_value_t = 4)]
        settle_secs: u64,
        /// Internal: run as worker number N.
        #[arg(long, hide = true)]
        worker: Option<usize>,
    },
    /// Socket senders → socket receivers at a target rate (open loop).
    Fanout {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        /// Gateway the senders (customers) connect to (default: the receivers' one).
        #[arg(long)]
        senders_url: Option<String>,
    },
    /// One sender, one conversation, `--receivers` sockets in its room (the
    /// owner's, all joined): each message delivered to every one of them.
    /// `--rate` is messages per second; deliveries are `rate × receivers`.
    Room {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        /// Gateway the sender (the customer) connects to (default: the receivers' one).
        #[arg(long)]
        senders_url: Option<String>,
        #[arg(long)]
        receivers: usize,
    },
    /// HTTP `POST /api/messages/send` at a target rate with receivers connected.
    RestSend {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        /// The REST API base URL.
        #[arg(long)]
        api: String,
    },
    /// Raise the fanout rate step by step until p99 or losses break the
    /// threshold twice in a row at the same rate (a step that breaks it is run
    /// once more: one 5 s step can catch a pause — a collection in a Node
    /// peer, a checkpoint in the database — that is not the stack's limit).
    Ramp {
        #[command(flatten)]
        common: Common,
        #[command(flatten)]
        load: Load,
        #[arg(long)]
        senders_url: Option<String>,
        /// Send over REST to this API base URL instead of over sockets (the stored path).
        #[arg(long, conflicts_with = "senders_url")]
        api: Option<String>,
        #[arg(long, default_value_t = 500.0)]
        step: f64,
        #[arg(long, default_value_t = 20_000.0)]
        max_rate: f64,
        /// p99 (ms) above which a step counts as saturated.
        #[arg(long, default_value_t = 50.0)]
        p99_ms: f64,
    },
    /// A polling request sent to the gateway holding its session, and to another
    /// gateway that forwards it: latency and server CPU per request.
    Forwarding {
        #[command(flatten)]
        common: Common,
        /// The gateway that opens and holds the session.
        #[arg(long)]
        owner: String,
        /// Another gateway of the same cluster.
        #[arg(long)]
        other: String,
        #[arg(long, default_value_t = 2000)]
        requests: usize,
    },
    /// Notifications on the stored path: REST sends to offline customers at a
    /// fixed rate without and then with a push subscription each (the push
    /// service: a sink here), then a burst, watching the outbox drain.
    Notify {
        #[command(flatten)]
        common: Common,
        /// The REST API base URL (a pod with `OMNIBIZ_VAPID_*` and `OMNIBIZ_WEBHOOK_ALLOW_PRIVATE`).
        #[arg(long)]
        api: String,
        #[arg(long, default_value_t = 200)]
        pairs: usize,
        /// REST sends per second in the `without` and `with` phases.
        #[arg(long, default_value_t = 300.0)]
        rate: f64,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        /// Messages in the burst.
        #[arg(long, default_value_t = 10_000)]
        burst: usize,
        /// Senders in the burst.
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
        /// The API's MongoDB (to watch the outbox and pending pushes).
        #[arg(long)]
        mongodb: String,
        #[arg(long)]
        database: String,
    },
    /// Long mixed load: customers that leave and come back every 20–40 s,
    /// REST sends, typing, read receipts; memory and latency per window, losses.
    Soak {
        #[command(flatten)]
        common: Common,
        /// Gateway URLs (clients alternate between them on each reconnect).
        #[arg(long = "url", required = true)]
        urls: Vec<String>,
        /// The REST API base URL.
        #[arg(long)]
        api: String,
        #[arg(long, default_value_t = 200)]
        pairs: usize,
        /// REST sends per second.
        #[arg(long, default_value_t = 100.0)]
        rate: f64,
        #[arg(long, default_value_t = 600)]
        duration_secs: u64,
        /// Seconds per reporting window.
        #[arg(long, default_value_t = 60)]
        window_secs: u64,
    },
    /// Raw Redis PUBLISH → SUBSCRIBE throughput (the physical limit).
    RedisRaw {
        #[arg(long)]
        redis: String,
        #[arg(long, default_value_t = 200_000)]
        messages: u64,
        #[arg(long, default_value_t = 400)]
        size: usize,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// The database's own insert rate for our message documents (same driver,
    /// same indexes, same server): the ceiling of the stored path.
    RawInsert {
        /// MongoDB connection string.
        #[arg(long)]
        mongodb: String,
        /// Database to insert into (a scratch collection, dropped afterwards).
        #[arg(long)]
        database: String,
        /// Inserts in flight: 16 is what one API process uses for appends.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        #[arg(long, default_value_t = 10)]
        duration_secs: u64,
        #[arg(long, default_value_t = 200)]
        conversations: usize,
        /// Database server PIDs whose CPU to read (comma-separated).
        #[arg(long, value_delimiter = ',')]
        pids: Vec<u32>,
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Turn result lines into Markdown tables and an SVG latency plot.
    Report {
        /// The JSON-lines results file.
        #[arg(long)]
        results: PathBuf,
        /// Where to write the SVG plot.
        #[arg(long)]
        plot: PathBuf,
    },
}

#[derive(Args, Clone)]
struct Load {
    /// Gateway URL the receivers connect to.
    #[arg(long)]
    url: String,
    /// Conversations (owner + customer pairs).
    #[arg(long, default_value_t = 200)]
    pairs: usize,
    /// Target total send rate, messages per second (the start rate for `ramp`).
    #[arg(long, default_value_t = 1000.0)]
    rate: f64,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    /// Database server PIDs whose CPU to read as well (comma-separated):
    /// reported as database CPU per delivered message.
    #[arg(long, value_delimiter = ',')]
    db_pids: Vec<u32>,
    /// The database's URI (stored scenarios): its command counters
    /// (`serverStatus`), reported as commands per stored message.
    #[arg(long)]
    db_uri: Option<String>,
}

/// What the ramp does after a step.
#[derive(Debug, PartialEq, Eq)]
enum RampNext {
    /// The step broke the threshold for the first time at its rate: run it again.
    Retry,
    /// It broke it twice in a row: the previous rate is the saturation rate.
    Stop,
    /// It held: record its rate and go one step up.
    Raise,
}

/// The ramp's course: a step that breaks the threshold is run once more
/// before the ramp ends (one 5 s step can catch a pause that is not the
/// stack's limit).
#[derive(Default)]
struct RampCourse {
    /// The step being run repeats one that broke the threshold.
    retried: bool,
}

impl RampCourse {
    fn after(&mut self, broke: bool) -> RampNext {
        match (broke, self.retried) {
            (true, false) => {
                self.retried = true;
                RampNext::Retry
            }
            (true, true) => RampNext::Stop,
            (false, _) => {
                self.retried = false;
                RampNext::Raise
            }
        }
    }
}

fn save(
    common_out: Option<&PathBuf>,
    label: &str,
    scenario: &str,
    params: Value,
    result: &Value,
) -> anyhow::Result<()> {
    println!("{scenario} [{label}]\n{}", report::table(result));
    if let Some(path) = common_out {
        use std::io::Write as _;
        let line = json!({"label": label, "scenario": scenario, "params": params, "result": result});
        let mut f = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        writeln!(f, "{line}")?;
    }
    Ok(())
}

fn fanout_plan(common: &Common, load: &Load, senders_url: Option<String>, sender: fanout::Sender) -> fanout::Plan {
    fanout::Plan {
        receivers_url: load.url.clone(),
        senders_url: senders_url.unwrap_or_else(|| load.url.clone()),
        pairs: load.pairs,
        rate: load.rate,
        duration: Duration::from_secs(load.duration_secs),
        pids: common.pids.clone(),
        db_pids: load.db_pids.clone(),
        db_uri: load.db_uri.clone(),
        sender,
        room: 0,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Cmd::Connections { common, urls, count, workers, sources, concurrency, settle_secs, worker } => {
            let pairs = tokens::load(&common.tokens)?;
            if let Some(w) = worker {
                // Worker w takes every `workers`-th pair starting at w (the parent passes --count).
                let mine: Vec<_> = pairs.iter().skip(w).step_by(workers.max(1)).cloned().collect();
                return connections::worker(mine, connections::Plan { urls, count, sources, concurrency }).await;
            }
            let exe = std::env::current_exe().context("locating myself")?;
            let mut args = vec!["connections".to_owned(), "--tokens".into(), common.tokens.display().to_string()];
            for u in &urls {
                args.extend(["--url".into(), u.clone()]);
            }
            args.extend(["--workers".into(), workers.to_string(), "--concurrency".into(), concurrency.to_string()]);
            if !sources.is_empty() {
                let s: Vec<String> = sources.iter().map(ToString::to_string).collect();
                args.extend(["--sources".into(), s.join(",")]);
            }
            let pids = common.pids.clone();
            let result = tokio::task::spawn_blocking(move || {
                connections::run(&exe, &args, count, workers.max(1), &pids, Duration::from_secs(settle_secs))
            })
            .await??;
            save(
                common.out.as_ref(),
                &common.label,
                "connections",
                json!({"count": count, "workers": workers}),
                &result,
            )
        }
        Cmd::Fanout { common, load, senders_url } => {
            let pairs = tokens::load(&common.tokens)?;
            let cross = senders_url.as_ref().is_some_and(|s| *s != load.url);
            let plan = fanout_plan(&common, &load, senders_url, fanout::Sender::Socket);
            let result = fanout::run(&pairs, &plan).await?;
            let params = json!({"pairs": load.pairs, "rate": load.rate, "duration_secs": load.duration_secs, "cross_gateway": cross});
            save(common.out.as_ref(), &common.label, "fanout", params, &result)
        }
        Cmd::Room { common, load, senders_url, receivers } => {
            anyhow::ensure!(receivers > 0, "--receivers must be at least 1");
            let pairs = tokens::load(&common.tokens)?;
            let cross = senders_url.as_ref().is_some_and(|s| *s != load.url);
            let plan =
                fanout::Plan { room: receivers, ..fanout_plan(&common, &load, senders_url, fanout::Sender::Socket) };
            let result = fanout::run(&pairs, &plan).await?;
            let params = json!({"receivers": receivers, "rate": load.rate, "duration_secs": load.duration_secs, "cross_gateway": cross});
            // One row per system and room size.
            save(common.out.as_ref(), &format!("{}@{receivers}", common.label), "room", params, &result)
        }
        Cmd::RestSend { common, load, api } => {
            let pairs = tokens::load(&common.tokens)?;
            let plan = fanout_plan(&common, &load, None, fanout::Sender::Rest(api));
            let result = fanout::run(&pairs, &plan).await?;
            let params = json!({"pairs": load.pairs, "rate": load.rate, "duration_secs": load.duration_secs});
            save(common.out.as_ref(), &common.label, "rest-send", params, &result)
        }
        Cmd::Ramp { common, load, senders_url, api, step, max_rate, p99_ms } => {
            let pairs = tokens::load(&common.tokens)?;
            let mut rate = load.rate;
            let mut steps = Vec::new();
            let mut saturation = None;
            let sender = api.clone().map_or(fanout::Sender::Socket, fanout::Sender::Rest);
            let mut course = RampCourse::default();
            while rate <= max_rate {
                let mut plan = fanout_plan(&common, &load, senders_url.clone(), sender.clone());
                plan.rate = rate;
                let r = fanout::run(&pairs, &plan).await?;
                let p99 = r["latency_ms"]["p99"].as_f64().unwrap_or(f64::MAX);
                let sent = r["sent"].as_f64().unwrap_or(0.0).max(1.0);
                let lost = r["lost"].as_f64().unwrap_or(0.0) + r["errors"].as_f64().unwrap_or(0.0);
                eprintln!(
                    "ramp {rate}/s: p99 {p99:.1} ms, delivered {:.0}/s, lost+errors {lost}",
                    r["delivered_per_sec"]
                );
                let broke =
                    p99 > p99_ms || lost / sent > 0.001 || r["client_behind"].as_f64().unwrap_or(0.0) / sent > 0.01;
                steps.push(json!({"rate": rate, "result": r, "retry": course.retried}));
                match course.after(broke) {
                    RampNext::Retry => {}
                    RampNext::Stop => break,
                    RampNext::Raise => {
                        saturation = Some(rate);
                        rate += step;
                    }
                }
            }
            let result = json!({"saturation_rate": saturation, "p99_threshold_ms": p99_ms, "steps": steps});
            let params = json!({"pairs": load.pairs, "start": load.rate, "step": step,
                "duration_secs": load.duration_secs, "sender": if api.is_some() { "rest" } else { "socket" }});
            let scenario = if api.is_some() { "rest-ramp" } else { "ramp" };
            save(common.out.as_ref(), &common.label, scenario, params, &result)
        }
        Cmd::Forwarding { common, owner, other, requests } => {
            let pairs = tokens::load(&common.tokens)?;
            let plan =
                forwarding::Plan { owner, other, token: pairs[0].owner.clone(), requests, pids: common.pids.clone() };
            let result = forwarding::run(&plan).await?;
            save(common.out.as_ref(), &common.label, "forwarding", json!({"requests": requests}), &result)
        }
        Cmd::Notify { common, api, pairs: n, rate, duration_secs, burst, concurrency, mongodb, database } => {
            let mut pairs = tokens::load(&common.tokens)?;
            pairs.truncate(n);
            let plan = notify::Plan {
                api,
                pairs,
                rate,
                duration: Duration::from_secs(duration_secs),
                burst,
                concurrency,
                mongodb,
                database,
                pids: common.pids.clone(),
            };
            let result = notify::run(&plan).await?;
            let params = json!({"pairs": n, "rate": rate, "duration_secs": duration_secs, "burst": burst});
            save(common.out.as_ref(), &common.label, "notify", params, &result)
        }
        Cmd::Soak { common, urls, api, pairs: n, rate, duration_secs, window_secs } => {
            let pairs = tokens::load(&common.tokens)?;
            let plan = soak::Plan {
                urls,
                api,
                pairs: n,
                rate,
                duration: Duration::from_secs(duration_secs),
                window: Duration::from_secs(window_secs.max(1)),
                pids: common.pids.clone(),
            };
            let result = soak::run(&pairs, &plan).await?;
            let params = json!({"pairs": n, "rate": rate, "duration_secs": duration_secs});
            save(common.out.as_ref(), &common.label, "soak", params, &result)
        }
        Cmd::RedisRaw { redis, messages, size, out } => {
            let result = redis_raw::run(&redis, messages, size).await?;
            save(out.as_ref(), "redis", "redis-raw", json!({"messages": messages, "size": size}), &result)
        }
        Cmd::RawInsert { mongodb, database, concurrency, duration_secs, conversations, pids, out } => {
            let plan = raw_insert::Plan {
                uri: mongodb,
                database,
                concurrency,
                duration: Duration::from_secs(duration_secs),
                conversations,
                pids,
            };
            let result = raw_insert::run(&plan).await?;
            let params = json!({"concurrency": concurrency, "duration_secs": duration_secs});
            save(out.as_ref(), "mongodb", "raw-insert", params, &result)
        }
        Cmd::Report { results, plot } => {
            let md = report::markdown(&results, &plot)?;
            print!("{md}");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{RampCourse, RampNext};

    #[test]
    fn a_ramp_step_that_breaks_runs_once_more_and_two_in_a_row_end_it() {
        let mut c = RampCourse::default();
        assert_eq!(c.after(false), RampNext::Raise);
        assert_eq!(c.after(true), RampNext::Retry, "a first break is run again");
        assert!(c.retried);
        assert_eq!(c.after(false), RampNext::Raise, "the retry held: the rate counts");
        assert!(!c.retried);
        assert_eq!(c.after(true), RampNext::Retry);
        assert_eq!(c.after(true), RampNext::Stop, "two breaks in a row at one rate end the ramp");
    }
}
