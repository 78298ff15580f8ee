//! Result tables (terminal and Markdown) and the latency plot.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context as _;
use plotters::prelude::*;
use serde_json::Value;

/// `key: value` lines for the terminal.
pub fn table(v: &Value) -> String {
    let mut out = String::new();
    if let Value::Object(m) = v {
        for (k, val) in m {
            if k == "latency_curve_ms" || k == "steps" {
                continue;
            }
            let _ = writeln!(out, "  {k:<32} {val}");
        }
    }
    out
}

fn num(v: &Value, path: &[&str]) -> f64 {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    cur.as_f64().unwrap_or(f64::NAN)
}

/// The Node.js peers every scenario runs against: socket.io on Node's own
/// HTTP server (the seed's stack) and on uWebSockets.js (tuned).
const PEERS: [&str; 2] = ["node-peer", "node-uws"];

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 { format!("{:.2}×", a / b) } else { "—".into() }
}

/// Markdown sections for every scenario in the results file; writes the SVG plot.
pub fn markdown(results: &Path, plot: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(results).with_context(|| format!("reading {}", results.display()))?;
    let rows: Vec<Value> =
        text.lines().filter(|l| !l.trim().is_empty()).map(serde_json::from_str).collect::<Result<_, _>>()?;
    let mut by: BTreeMap<(String, String), Value> = BTreeMap::new();
    for r in &rows {
        let key = (r["scenario"].as_str().unwrap_or("").to_owned(), r["label"].as_str().unwrap_or("").to_owned());
        by.insert(key, r.clone());
    }
    let get = |s: &str, l: &str| by.get(&(s.to_owned(), l.to_owned()));
    let mut md = String::new();

    let _ = writeln!(md, "### Idle connections (one gateway process each, same N)\n");
    let _ = writeln!(
        md,
        "| system | connections | failed | server RSS KiB/conn | connect rate/s | connect p50 / p99 / max ms | server CPU s |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for ((s, l), r) in &by {
        if s == "connections" {
            let x = &r["result"];
            let c = &x["connect_ms"];
            let connect =
                if c.is_object() { format!("{} / {} / {}", c["p50"], c["p99"], c["max"]) } else { "—".into() };
            let _ = writeln!(
                md,
                "| {l} | {} | {} | {:.2} | {:.0} | {connect} | {:.2} |",
                x["connections"],
                x["failed"],
                num(x, &["server_rss_kib_per_connection"]),
                num(x, &["connect_rate_per_sec"]),
                num(x, &["server_cpu_secs"])
            );
        }
    }
    if let Some(h) = get("fleet-handshakes", "omnibiz-fleet") {
        let x = &h["result"];
        let _ = writeln!(
            md,
            "\nThe fleet's handshakes as its gateways timed them (connection opened → first CONNECT accepted): \
             {}, mean {:.1} ms, {} over 10 s, {} past the 45 s deadline.",
            x["handshakes"],
            num(x, &["mean_ms"]),
            x["over_10s"],
            x["timed_out"]
        );
    }
    for (size, at) in [("", "at the full count"), ("@3k", "at 3 000 connections")] {
        for peer in PEERS {
            let (ours, theirs) = (format!("omnibiz{size}"), format!("{peer}{size}"));
            if let (Some(o), Some(p)) = (get("connections", &ours), get("connections", &theirs)) {
                let (o, p) = (
                    num(&o["result"], &["server_rss_kib_per_connection"]),
                    num(&p["result"], &["server_rss_kib_per_connection"]),
                );
                let _ = writeln!(
                    md,
                    "\nMemory per connection {at}, ours vs `{peer}`: **{}** of its (`{peer}` ÷ ours = {}).",
                    ratio(o, p),
                    ratio(p, o)
                );
            }
        }
    }

    let _ = writeln!(md, "\n### Message relay\n");
    let _ = writeln!(
        md,
        "| scenario | system | pairs | target/s | delivered/s | delivered per server CPU-s | p50 ms | p99 ms | p99.9 ms | max ms | lost | dup | errors |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    for ((s, l), r) in &by {
        if s == "fanout" || s == "rest-send" {
            let x = &r["result"];
            let _ = writeln!(
                md,
                "| {s} | {l} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} | {} | {} | {} |",
                x["pairs"],
                x["target_rate"],
                num(x, &["delivered_per_sec"]),
                num(x, &["delivered_per_cpu_sec"]),
                num(x, &["latency_ms", "p50"]),
                num(x, &["latency_ms", "p99"]),
                num(x, &["latency_ms", "p999"]),
                num(x, &["latency_ms", "max"]),
                x["lost"],
                x["duplicates"],
                x["errors"]
            );
        }
    }
    for peer in PEERS {
        let ours = "omnibiz-relay";
        if let (Some(o), Some(p)) = (get("fanout", ours), get("fanout", peer)) {
            let per_cpu =
                ratio(num(&o["result"], &["delivered_per_cpu_sec"]), num(&p["result"], &["delivered_per_cpu_sec"]));
            let p99 = ratio(num(&p["result"], &["latency_ms", "p99"]), num(&o["result"], &["latency_ms", "p99"]));
            let _ = writeln!(
                md,
                "\n`{ours}` vs `{peer}`: delivered per server CPU-second **{per_cpu}**; p99 latency peer ÷ ours **{p99}**."
            );
        }
    }

    let ramps: Vec<_> = by.iter().filter(|((s, _), _)| s == "ramp").collect();
    if !ramps.is_empty() {
        let _ = writeln!(
            md,
            "\n### Saturation (ramp)\n\nThe relay ramps (`omnibiz-relay`, `node-peer`, `node-uws`) run pinned: a stack's servers and Redis on one core, the load generator on the other. The stored ramps (`omnibiz`, `node-seed`, socket senders) share the box with the database.\n\n| system | saturation rate/s | p99 threshold ms | steps |\n|---|---|---|---|"
        );
        for ((_, l), r) in ramps {
            let x = &r["result"];
            let _ = writeln!(
                md,
                "| {l} | {} | {} | {} |",
                x["saturation_rate"],
                x["p99_threshold_ms"],
                x["steps"].as_array().map_or(0, Vec::len)
            );
        }
        let sat = |l: &str| get("ramp", l).and_then(|r| r["result"]["saturation_rate"].as_f64()).unwrap_or(f64::NAN);
        for peer in PEERS {
            let _ = writeln!(
                md,
                "\nSaturation, `omnibiz-relay` ÷ `{peer}`: **{}**.",
                ratio(sat("omnibiz-relay"), sat(peer))
            );
        }
    }
    rooms(&mut md, &by);
    stored_path(&mut md, &get);
    overload(&mut md, &get);
    seed_stack(&mut md, &get);
    match get("redis-raw", "redis") {
        Some(raw) if raw["result"]["received"] != raw["result"]["messages"] => {
            // Its rate would be computed over the wait for messages that never came.
            let _ = writeln!(
                md,
                "\n### Physical limit\n\nRaw Redis PUBLISH → subscriber: **not measured in this run**: the subscriber received {} of {} messages, so no rate or ratio is given.",
                raw["result"]["received"], raw["result"]["messages"]
            );
        }
        Some(raw) => {
            let limit = num(&raw["result"], &["delivered_per_sec"]);
            let _ = writeln!(
                md,
                "\n### Physical limit\n\nRaw Redis PUBLISH → subscriber on this machine: **{limit:.0} msgs/s** ({} B payloads).",
                raw["params"]["size"]
            );
            for l in ["omnibiz-relay", "node-peer", "node-uws"] {
                if let Some(r) = get("ramp", l).and_then(|r| r["result"]["saturation_rate"].as_f64()) {
                    let _ = writeln!(
                        md,
                        "Cross-gateway `{l}` at its saturation rate: {r:.0} msgs/s = **{:.0}%** of it.",
                        100.0 * r / limit
                    );
                }
            }
        }
        None => {}
    }
    if let Some(f) = get("forwarding", "omnibiz") {
        let x = &f["result"];
        let _ =
            writeln!(md, "\n### Polling without affinity: a request forwarded to the gateway holding its session\n");
        let _ = writeln!(md, "| path | requests | p50 ms | p99 ms | server CPU µs/request (both gateways) |");
        let _ = writeln!(md, "|---|---|---|---|---|");
        for (name, key) in [("direct (the holder)", "direct"), ("forwarded (another gateway)", "forwarded")] {
            let _ = writeln!(
                md,
                "| {name} | {} | {:.3} | {:.3} | {:.0} |",
                x["requests"],
                num(x, &[key, "p50_ms"]),
                num(x, &[key, "p99_ms"]),
                num(x, &[key, "cpu_us_per_request"]),
            );
        }
        let _ = writeln!(
            md,
            "\nA forwarded poll adds **{:.3} ms** at p50 and **{:.0} µs** of server CPU.",
            num(x, &["added_p50_ms"]),
            num(x, &["added_cpu_us_per_request"])
        );
    }
    if let Some(n) = get("notify", "omnibiz") {
        notifications(&mut md, &n["result"]);
    }
    plot_latency(&by, plot)?;
    let _ = writeln!(md, "\n![latency percentiles]({})", plot.display());
    Ok(md)
}

/// The `notify` scenario: REST sends to offline customers without and with a
/// push subscription each, and a burst draining into collapsed pushes.
pub fn notifications(md: &mut String, x: &Value) {
    let _ = writeln!(md, "\n### Notifications: stored REST sends to offline customers, without and with Web Push\n");
    let _ = writeln!(md, "| phase | offered/s | stored/s | p50 ms | p99 ms | refused | API+DB CPU ms/send |");
    let _ = writeln!(md, "|---|---|---|---|---|---|---|");
    for (name, key) in [("nobody subscribed", "without"), ("every customer subscribed (a push per message)", "with")] {
        let r = &x[key];
        let _ = writeln!(
            md,
            "| {name} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {:.2} |",
            num(r, &["offered_per_sec"]),
            num(r, &["stored_per_sec"]),
            num(r, &["latency_ms", "p50"]),
            num(r, &["latency_ms", "p99"]),
            r["refused"],
            num(r, &["server_cpu_ms_per_send"]),
        );
    }
    let (a, b) = (num(x, &["without", "stored_per_sec"]), num(x, &["with", "stored_per_sec"]));
    let (ca, cb) = (num(x, &["without", "server_cpu_ms_per_send"]), num(x, &["with", "server_cpu_ms_per_send"]));
    let _ = writeln!(
        md,
        "\nWith every recipient subscribed: stored sends/s **{}** of the run without, CPU per send **{}**; {} pushes sent in that phase.",
        ratio(b, a),
        ratio(cb, ca),
        x["pushes_in_with_phase"]
    );
    let y = &x["burst"];
    let _ = writeln!(
        md,
        "\nA burst of **{}** messages ({} senders, {:.0}/s stored, {} refused while overloaded and sent again) to {:.0} offline, \
         subscribed customers: **{} pushes** ({:.1} per conversation; the rest collapsed), the outbox at most {} events deep \
         and {} pushes pending, both empty **{:.1} s** after the last send (left: {} events, {} pushes).",
        y["messages"],
        y["concurrency"],
        num(y, &["sent_per_sec"]),
        y["refused_and_retried"],
        num(y, &["conversations"]),
        y["pushes"],
        num(y, &["pushes_per_conversation"]),
        y["max_outbox_events"],
        y["max_pending_pushes"],
        num(y, &["drained_secs_after_last_send"]),
        y["left"]["events"],
        y["left"]["pushes"],
    );
}

/// The stored path against the database's own ceiling: the raw insert
/// rate, REST sends at half of it, and the REST send ramp.
fn stored_path<'a>(md: &mut String, get: &impl Fn(&str, &str) -> Option<&'a Value>) {
    let Some(raw) = get("raw-insert", "mongodb") else { return };
    let x = &raw["result"];
    let ceiling = num(x, &["inserts_per_sec"]);
    let _ = writeln!(md, "\n### Stored path: against the database's own insert rate\n");
    let _ = writeln!(
        md,
        "| what | rate/s | p50 ms | p99 ms | errors | database CPU µs per message |\n|---|---|---|---|---|---|"
    );
    stored_row(
        md,
        &format!("`raw-insert`: the driver inserting our message documents, {} in flight", x["concurrency"]),
        ceiling,
        x,
        "server_cpu_us_per_insert",
    );
    let pairs = &x["send_pairs"];
    let pair_rate = num(pairs, &["pairs_per_sec"]);
    if pair_rate.is_finite() {
        stored_row(
            md,
            &format!(
                "`raw-insert` send pairs: a send's `seq` update then its insert, back to back, {} in flight",
                x["concurrency"]
            ),
            pair_rate,
            pairs,
            "server_cpu_us_per_pair",
        );
    }
    if let Some(r) = get("rest-send", "omnibiz") {
        let y = &r["result"];
        stored_row(
            md,
            &format!("`rest-send` offered {} (API → MongoDB → Redis → gateway → socket)", y["target_rate"]),
            num(y, &["delivered_per_sec"]),
            y,
            "database_cpu_us_per_message",
        );
    }
    let sat = get("rest-ramp", "omnibiz").and_then(|r| r["result"]["saturation_rate"].as_f64());
    if let Some(r) = get("rest-ramp", "omnibiz") {
        let threshold = &r["result"]["p99_threshold_ms"];
        let last = r["result"]["steps"].as_array().and_then(|s| s.last()).map(|s| &s["result"]);
        let _ = writeln!(
            md,
            "| `rest-ramp`: the highest offered REST rate with p99 ≤ {threshold} ms and nothing lost | {} | | | | |",
            sat.map_or("—".into(), |v| format!("{v:.0}")),
        );
        if let Some(l) = last {
            stored_row(
                md,
                &format!("(the ramp's last step: offered {}, delivered)", l["target_rate"]),
                num(l, &["delivered_per_sec"]),
                l,
                "database_cpu_us_per_message",
            );
        }
    }
    if let Some(s) = sat {
        let _ = writeln!(
            md,
            "\nREST sends with p99 within the threshold ÷ raw insert rate: **{:.0}%**; ÷ the database's own send-pair rate: **{:.0}%**.",
            100.0 * s / ceiling,
            100.0 * s / pair_rate
        );
    }
    if let Some(r) = get("rest-send", "omnibiz") {
        let d = num(&r["result"], &["delivered_per_sec"]);
        let _ = writeln!(
            md,
            "\nREST sends delivered when offered half the raw insert rate ÷ raw insert rate: **{:.0}%**; ÷ send-pair rate: **{:.0}%**.",
            100.0 * d / ceiling,
            100.0 * d / pair_rate
        );
    }
}

/// `room`: one sender, N receivers in its room, per system and size.
fn rooms(md: &mut String, by: &BTreeMap<(String, String), Value>) {
    let rows: Vec<(&String, &Value)> = by.iter().filter(|((s, _), _)| s == "room").map(|((_, l), r)| (l, r)).collect();
    if rows.is_empty() {
        return;
    }
    let _ = writeln!(md, "\n### Large rooms: one sender, N receivers in one conversation (across gateways)\n");
    let _ = writeln!(
        md,
        "| system | receivers | messages/s | deliveries/s | deliveries per server CPU-s | p50 ms | p99 ms | lost | dup |"
    );
    let _ = writeln!(md, "|---|---|---|---|---|---|---|---|---|");
    let mut sorted = rows.clone();
    sorted.sort_by_key(|(l, r)| (r["result"]["receivers"].as_u64().unwrap_or(0), (*l).clone()));
    for (l, r) in &sorted {
        let x = &r["result"];
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.0} | {:.0} | {:.2} | {:.2} | {} | {} |",
            l.split('@').next().unwrap_or(l),
            x["receivers"],
            x["target_rate"],
            num(x, &["delivered_per_sec"]),
            num(x, &["delivered_per_cpu_sec"]),
            num(x, &["latency_ms", "p50"]),
            num(x, &["latency_ms", "p99"]),
            x["lost"],
            x["duplicates"],
        );
    }
    let per_cpu = |l: &str| {
        by.get(&("room".to_owned(), l.to_owned())).map_or(f64::NAN, |r| num(&r["result"], &["delivered_per_cpu_sec"]))
    };
    let mut sizes: Vec<u64> = sorted.iter().filter_map(|(_, r)| r["result"]["receivers"].as_u64()).collect();
    sizes.dedup();
    for n in sizes {
        let ours = per_cpu(&format!("omnibiz-relay@{n}"));
        let vs: Vec<String> =
            PEERS.iter().map(|p| format!("÷ `{p}` **{}**", ratio(ours, per_cpu(&format!("{p}@{n}"))))).collect();
        let _ = writeln!(md, "\n{n} receivers, `omnibiz-relay` deliveries per server CPU-second {}.", vs.join(", "));
    }
}

/// The total commands per message in bold, then each command, most
/// frequent first (`**2.24**: 1.06 `findAndModify`, 1.00 `insert`, …`);
/// `—` when not measured.
fn commands_cell(c: &Value) -> String {
    let Some(m) = c.as_object() else { return "—".into() };
    // Below 0.005 per message (a few in the whole run) a command would read `0.00`: left out.
    let mut each: Vec<(&String, f64)> = m
        .iter()
        .filter(|(k, _)| *k != "total")
        .filter_map(|(k, v)| Some((k, v.as_f64()?)))
        .filter(|(_, v)| *v >= 0.005)
        .collect();
    each.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(b.0)));
    let list: Vec<String> = each.iter().map(|(k, v)| format!("{v:.2} `{k}`")).collect();
    format!("**{:.2}**: {}", num(c, &["total"]), list.join(", "))
}

/// Our stored path beside the seed's own stack (Express + socket.io +
/// Mongoose with the seed's models, `node-seed`), same run, same database.
fn seed_stack<'a>(md: &mut String, get: &impl Fn(&str, &str) -> Option<&'a Value>) {
    const SEED: &str = "node-seed";
    if get("fanout", "node-seed@fixed").is_none() && get("ramp", SEED).is_none() {
        return;
    }
    let _ = writeln!(md, "\n### Stored messages: OmniBiz beside the seed's stack (Node + Mongoose), same database\n");
    let _ = writeln!(
        md,
        "| what | system | offered/s | delivered/s | p50 ms | p99 ms | lost | database CPU µs per message | database commands per message |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (scenario, what) in [("fanout", "socket `send_message`"), ("rest-send", "`POST /api/messages/send`")] {
        for l in ["omnibiz@fixed", "node-seed@fixed"] {
            if let Some(r) = get(scenario, l) {
                let x = &r["result"];
                let cpu = x["database_cpu_us_per_message"].as_f64().map_or_else(|| "—".into(), |v| format!("{v:.0}"));
                let _ = writeln!(
                    md,
                    "| {what} at a fixed rate | {} | {} | {:.0} | {:.2} | {:.2} | {} | {cpu} | {} |",
                    l.trim_end_matches("@fixed"),
                    x["target_rate"],
                    num(x, &["delivered_per_sec"]),
                    num(x, &["latency_ms", "p50"]),
                    num(x, &["latency_ms", "p99"]),
                    x["lost"],
                    commands_cell(&x["database_commands_per_message"]),
                );
            }
        }
    }
    let sat = |scenario: &str, l: &str| {
        get(scenario, l).and_then(|r| r["result"]["saturation_rate"].as_f64()).unwrap_or(f64::NAN)
    };
    // A stack that failed the ramp's first step has no rate: say how it failed there.
    let first_step = |scenario: &str, l: &str| {
        get(scenario, l).and_then(|r| r["result"]["steps"].as_array()?.first().map(|s| &s["result"]))
    };
    for (scenario, what) in [("ramp", "socket sends"), ("rest-ramp", "REST sends")] {
        let (o, s) = (sat(scenario, "omnibiz"), sat(scenario, SEED));
        if o.is_finite() && s.is_finite() {
            let _ = writeln!(
                md,
                "\nStored {what}/s at p99 ≤ 50 ms, nothing lost: omnibiz **{o:.0}**, node-seed **{s:.0}**: **{}** of the seed's stack.",
                ratio(o, s)
            );
        } else if let (true, Some(step)) = (o.is_finite(), first_step(scenario, SEED)) {
            let first = num(step, &["target_rate"]);
            let _ = writeln!(
                md,
                "\nStored {what}/s at p99 ≤ 50 ms, nothing lost: omnibiz **{o:.0}**; node-seed failed the ramp's first step ({first:.0}/s: p99 {:.1} ms), so it holds less than that: **more than {}** of the seed's stack.",
                num(step, &["latency_ms", "p99"]),
                ratio(o, first)
            );
        }
    }
    let db = |scenario: &str, l: &str| {
        get(scenario, l).map_or(f64::NAN, |r| num(&r["result"], &["database_cpu_us_per_message"]))
    };
    for (scenario, what) in [("fanout", "socket"), ("rest-send", "REST")] {
        let (o, s) = (db(scenario, "omnibiz@fixed"), db(scenario, "node-seed@fixed"));
        if o.is_finite() && s.is_finite() {
            let _ = writeln!(
                md,
                "\nDatabase CPU per stored message ({what}), ours ÷ the seed's: **{}** ({o:.0} vs {s:.0} µs).",
                ratio(o, s)
            );
        }
    }
}

/// Stored sends offered above what the database can take (`omnibiz`: half
/// the raw insert rate, about its send-pair rate; `omnibiz@2x`: twice the
/// send-pair rate): what was accepted, its p99, what was refused and told
/// so, and what was lost.
fn overload<'a>(md: &mut String, get: &impl Fn(&str, &str) -> Option<&'a Value>) {
    let Some(raw) = get("raw-insert", "mongodb") else { return };
    let pair_rate = num(&raw["result"], &["send_pairs", "pairs_per_sec"]);
    let rows: Vec<(&str, &str, &Value)> = [("fanout", "socket"), ("rest-send", "REST")]
        .into_iter()
        .flat_map(|(scenario, how)| ["omnibiz", "omnibiz@2x"].map(move |l| (scenario, how, l)))
        .filter_map(|(scenario, how, l)| get(scenario, l).map(|r| (how, l, &r["result"])))
        .collect();
    if rows.is_empty() || !pair_rate.is_finite() {
        return;
    }
    let _ = writeln!(
        md,
        "\n### Overload: stored sends offered above the database's own rate\n\nThe database's send-pair rate in this run: {pair_rate:.0}/s. A send that finds the waiting line full (`OMNIBIZ_SEND_QUEUE_DEPTH`) or no free slot within `OMNIBIZ_SEND_QUEUE_MS` is refused (`OVERLOADED`), nothing stored; p99 is of the accepted sends, sent to delivered.\n\n| sends | offered/s | × pair rate | stored and delivered/s | p50 ms | p99 ms | refused | lost | duplicates |\n|---|---|---|---|---|---|---|---|---|"
    );
    for (how, _, x) in rows {
        let offered = num(x, &["target_rate"]);
        let _ = writeln!(
            md,
            "| {how} | {offered:.0} | {:.2} | {:.0} | {:.2} | {:.2} | {} | {} | {} |",
            offered / pair_rate,
            num(x, &["delivered_per_sec"]),
            num(x, &["latency_ms", "p50"]),
            num(x, &["latency_ms", "p99"]),
            x["refused"],
            x["lost"],
            x["duplicates"],
        );
    }
}

/// One row of the stored-path table: `x` has `latency_ms` and `errors`, and
/// the database's CPU per message under `cpu_key` (a dash when the run did
/// not measure it).
fn stored_row(md: &mut String, what: &str, rate: f64, x: &Value, cpu_key: &str) {
    let cpu = x[cpu_key].as_f64().map_or_else(|| "—".into(), |v| format!("{v:.0}"));
    let _ = writeln!(
        md,
        "| {what} | {rate:.0} | {:.2} | {:.2} | {} | {cpu} |",
        num(x, &["latency_ms", "p50"]),
        num(x, &["latency_ms", "p99"]),
        x["errors"]
    );
}

fn plot_latency(by: &BTreeMap<(String, String), Value>, path: &Path) -> anyhow::Result<()> {
    let curves: Vec<(String, Vec<(f64, f64)>)> = by
        .iter()
        .filter(|((s, _), _)| s == "fanout" || s == "rest-send")
        .map(|((s, l), r)| {
            let pts = r["result"]["latency_curve_ms"]
                .as_array()
                .map(|a| a.iter().enumerate().map(|(i, p)| (i as f64, p[1].as_f64().unwrap_or(0.0))).collect())
                .unwrap_or_default();
            (format!("{s} {l}"), pts)
        })
        .collect();
    let ymax = curves.iter().flat_map(|(_, p)| p.iter().map(|x| x.1)).fold(1.0_f64, f64::max);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption("send → receive latency by percentile (ms)", ("sans-serif", 20))
        .margin(20)
        .x_label_area_size(40)
        .y_label_area_size(60)
        .build_cartesian_2d(0f64..9f64, 0f64..ymax * 1.1)?;
    let labels = ["p0", "p50", "p75", "p90", "p95", "p99", "p99.5", "p99.9", "p99.99", "max"];
    chart
        .configure_mesh()
        .x_labels(10)
        .x_label_formatter(&|x| labels.get(x.round() as usize).copied().unwrap_or("").to_owned())
        .y_desc("ms")
        .draw()?;
    for (i, (name, pts)) in curves.into_iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))?
            .label(name)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color));
    }
    chart.configure_series_labels().border_style(BLACK).background_style(WHITE.mix(0.8)).draw()?;
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn commands_cell_lists_the_most_frequent_first() {
        let c = json!({"insert": 1.0, "find": 0.18, "findAndModify": 1.06, "getMore": 0.0, "total": 2.24});
        assert_eq!(commands_cell(&c), "**2.24**: 1.06 `findAndModify`, 1.00 `insert`, 0.18 `find`");
        assert_eq!(commands_cell(&Value::Null), "—");
    }
}
