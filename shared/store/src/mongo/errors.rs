//! What a driver error means for the store: unreachable (503) or not
//! (500), a unique index refusing a write, an index definition clashing.

use mongodb::error::{ErrorKind, WriteFailure};

use crate::StoreError;

pub(super) fn classify(what: &'static str, e: mongodb::error::Error) -> StoreError {
    metrics::counter!("store_errors_total", "backend" => "mongodb").increment(1);
    // MaxTimeMSExpired: the query's own time limit, not the database's health.
    if matches!(&*e.kind, ErrorKind::Command(ce) if ce.code == 50) {
        return StoreError::TimedOut(format!("{what}: the database stopped the query at its time limit"));
    }
    let unavailable = matches!(
        *e.kind,
        ErrorKind::ServerSelection { .. } | ErrorKind::Io(_) | ErrorKind::ConnectionPoolCleared { .. }
    );
    let err = anyhow::Error::new(e).context(what);
    if unavailable { StoreError::Unavailable(err) } else { StoreError::Other(err) }
}

/// Like [`classify`], with a message that says which index failed and why.
pub(super) fn index_error(what: &str, e: mongodb::error::Error) -> StoreError {
    let hint = match &*e.kind {
        ErrorKind::Command(ce) if ce.code == 11000 => {
            " (documents already in the collection violate it; `omnibiz migrate --dry-run` lists them)"
        }
        ErrorKind::Command(ce) if ce.code == 85 || ce.code == 86 => {
            " (an older definition of it exists: `omnibiz migrate` replaces it)"
        }
        _ => "",
    };
    let what = format!("{what}{hint}");
    match classify("creating indexes", e) {
        StoreError::Unavailable(err) => StoreError::Unavailable(err.context(what)),
        StoreError::Other(err) => StoreError::Other(err.context(what)),
        timed_out @ StoreError::TimedOut(_) => timed_out,
    }
}

pub(super) fn is_options_conflict(e: &mongodb::error::Error) -> bool {
    matches!(&*e.kind, ErrorKind::Command(ce) if ce.code == 85 || ce.code == 86)
}

pub(super) fn is_duplicate_key(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::Write(WriteFailure::WriteError(we)) => we.code == 11000,
        ErrorKind::Command(ce) => ce.code == 11000,
        ErrorKind::InsertMany(im) => im.write_errors.iter().flatten().any(|we| we.code == 11000),
        _ => false,
    }
}

/// An `insert_many` that failed only because some documents already existed.
pub(super) fn only_duplicates(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::InsertMany(im) => {
            im.write_concern_error.is_none() && im.write_errors.iter().flatten().all(|we| we.code == 11000)
        }
        _ => is_duplicate_key(e),
    }
}
