//! `omnibiz migrate`: prepares a MongoDB database the Node.js service wrote
//! (see `omnibiz_store::mongo::legacy` for what it does and why it
//! is safe to run while both services write, to repeat, and to kill).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use omnibiz_service::config::Settings;
use omnibiz_store::mongo::MongoStore;
use omnibiz_store::mongo::legacy::{MigrateOptions, MigratePlan, MigrateReport};
use secrecy::ExposeSecret as _;

/// Runs the migration (or, with `dry_run`, only reports it) and prints what it did.
pub async fn run(settings: &Settings, opts: &MigrateOptions) -> anyhow::Result<MigrateReport> {
    let uri = settings.mongodb_uri.as_ref().context("MONGODB_URI is required for `omnibiz migrate`")?;
    let store = MongoStore::connect(uri.expose_secret(), settings.mongodb_database.as_deref()).await?;
    let db = store.database().name().to_owned();
    let started = Instant::now();
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template("numbering messages [{bar:30}] {pos}/{len} ({per_sec}, eta {eta})")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    if !std::io::stderr().is_terminal() {
        bar.set_draw_target(ProgressDrawTarget::hidden());
    }
    // Without a terminal, one line every few seconds instead of a bar.
    let last_line = std::sync::Mutex::new(Instant::now());
    let progress = |done: u64, total: u64| {
        bar.set_length(total);
        bar.set_position(done);
        let mut last = last_line.lock().unwrap_or_else(|p| p.into_inner());
        if bar.is_hidden() && (last.elapsed() >= Duration::from_secs(2) || done == total) {
            eprintln!("numbered {done}/{total} messages");
            *last = Instant::now();
        }
    };
    eprintln!("{} database `{db}`", if opts.dry_run { "checking (dry run, nothing changes)" } else { "migrating" });
    let report = store.migrate(opts, &format!("omnibiz migrate {}", env!("CARGO_PKG_VERSION")), &progress).await?;
    bar.finish_and_clear();
    println!("{}", describe(&report.plan, opts.dry_run));
    if !opts.dry_run {
        println!(
            "done in {:.1}s: {} conversations filled, {} messages numbered{}",
            started.elapsed().as_secs_f64(),
            report.conversations_filled,
            report.numbered,
            if report.orphans > 0 {
                format!(", {} left without seq (their conversation does not exist)", report.orphans)
            } else {
                String::new()
            }
        );
        println!("the database is ready for `omnibiz api` and `omnibiz gateway`");
    }
    Ok(report)
}

fn describe(plan: &MigratePlan, dry_run: bool) -> String {
    let verb = if dry_run { "would" } else { "did" };
    let mut out = vec![format!(
        "{} conversations; {verb} fill missing fields in {}, convert {} string previews, number {} messages in {} \
         conversations",
        plan.conversations,
        plan.conversations_to_fill,
        plan.string_previews,
        plan.messages_to_number,
        plan.conversations_to_number
    )];
    if plan.indexes.is_empty() {
        out.push("indexes: all in place".into());
    }
    for i in &plan.indexes {
        out.push(format!("index: {verb} {i}"));
    }
    for d in &plan.duplicate_pairs {
        out.push(format!("BLOCKER: {d}"));
    }
    out.push(format!("schema marker: {}", if plan.marker_present { "present" } else { "absent" }));
    out.join("\n")
}
