//! Runs the legacy adopter (`omnibiz_store::mongo::legacy::Adopter`) on a
//! timer: each pass numbers the messages the Node service stored since the
//! last one, and this job publishes them so live sockets see them.

use std::time::Duration;

use omnibiz_store::mongo::MongoStore;
use omnibiz_store::mongo::legacy::Adopter;

use crate::messaging::Messaging;

/// Numbers and publishes what the Node service stores while both run, every
/// `every`, for as long as the process lives. One process at a time holds the
/// adopter's lease (`holder` names this one).
pub async fn run(mongo: MongoStore, messaging: Messaging, every: Duration, holder: String) {
    let adopter = Adopter::new(mongo, &holder, (every * 20).max(Duration::from_secs(5)));
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        match adopter.run_once().await {
            Ok(adopted) => {
                let oldest = adopted.iter().flat_map(|a| a.messages.iter()).map(|m| m.created_at).min();
                let lag = oldest.map_or(0.0, |t| (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
                metrics::gauge!("legacy_adopter_lag_seconds").set(lag);
                for a in &adopted {
                    for m in &a.messages {
                        messaging.publish_adopted(&a.conversation, m).await;
                    }
                }
            }
            Err(e) => {
                metrics::counter!("legacy_adopter_errors_total").increment(1);
                tracing::warn!(error.cause_chain = ?e, "legacy adopter pass failed; retrying");
            }
        }
    }
}
