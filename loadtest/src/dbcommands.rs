//! Which commands a stored message costs the database: the server's own
//! per-command counters (`serverStatus` → `metrics.commands`), read before
//! and after a stored scenario. What the database's CPU per message is made
//! of, measured by the same run that reports it.

use std::collections::BTreeMap;

use mongodb::Client;
use mongodb::bson::{Bson, Document, doc};

/// The data commands a send can cost (the rest — `hello`, `serverStatus`,
/// `endSessions`, … — is the drivers' and this reader's own traffic).
const COUNTED: [&str; 8] = ["insert", "update", "findAndModify", "find", "getMore", "delete", "aggregate", "count"];

/// Counter totals by command name.
pub type Counters = BTreeMap<&'static str, i64>;

/// Reads the counters of [`COUNTED`] from `serverStatus`.
pub async fn read(client: &Client) -> anyhow::Result<Counters> {
    let status = client.database("admin").run_command(doc! {"serverStatus": 1}).await?;
    let commands = status
        .get_document("metrics")
        .and_then(|m| m.get_document("commands"))
        .map_err(|_| anyhow::anyhow!("serverStatus has no metrics.commands (this server does not count commands)"))?;
    Ok(COUNTED.iter().map(|name| (*name, total(commands, name))).collect())
}

/// [`read`] when there is a client, `None` (with the reason on stderr) when
/// it fails: a server without command counters still gets its CPU measured.
pub async fn read_if(client: Option<&Client>) -> Option<Counters> {
    read(client?).await.inspect_err(|e| eprintln!("database commands per message not measured: {e:#}")).ok()
}

fn total(commands: &Document, name: &str) -> i64 {
    match commands.get_document(name).ok().and_then(|c| c.get("total")) {
        Some(Bson::Int64(n)) => *n,
        Some(Bson::Int32(n)) => i64::from(*n),
        Some(Bson::Double(n)) => *n as i64,
        _ => 0,
    }
}

/// Commands per message between two readings (those that ran at all), and
/// their sum under `"total"`.
pub fn per_message(before: &Counters, after: &Counters, messages: u64) -> serde_json::Map<String, serde_json::Value> {
    let n = messages.max(1) as f64;
    let mut out = serde_json::Map::new();
    let mut sum = 0;
    for (name, a) in after {
        let d = a - before.get(name).copied().unwrap_or(0);
        if d > 0 {
            out.insert((*name).to_owned(), serde_json::json!(round2(d as f64 / n)));
            sum += d;
        }
    }
    out.insert("total".into(), serde_json::json!(round2(sum as f64 / n)));
    out
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_message_counts_only_what_ran_and_sums_it() {
        let before: Counters = [("insert", 10), ("update", 5), ("find", 7)].into_iter().collect();
        let after: Counters =
            [("insert", 210), ("update", 5), ("find", 43), ("findAndModify", 200)].into_iter().collect();
        let m = per_message(&before, &after, 200);
        assert_eq!(m.get("insert"), Some(&serde_json::json!(1.0)));
        assert_eq!(m.get("findAndModify"), Some(&serde_json::json!(1.0)));
        assert_eq!(m.get("find"), Some(&serde_json::json!(0.18)));
        assert!(!m.contains_key("update"), "a command that did not run is left out");
        assert_eq!(m.get("total"), Some(&serde_json::json!(2.18)));
    }

    #[test]
    fn counters_of_any_integer_width_are_read() {
        let c = doc! {"insert": {"total": 3_i32, "failed": 0_i32}, "find": {"total": 4_i64}, "update": {"total": 5.0}};
        assert_eq!((total(&c, "insert"), total(&c, "find"), total(&c, "update"), total(&c, "delete")), (3, 4, 5, 0));
    }
}
