//! Sessions: a connection lives as long as its token (plus the leeway),
//! a fresh token extends it on the live socket (`refresh_token`), and it
//! ends at once when its principal's sessions are revoked (a
//! `session.revoked` envelope on the principal's topic). An ended session
//! is told why (`session_ended` with a `reason`), then disconnected from
//! the namespace, which socket.io clients do not reconnect by themselves.

use omnibiz_domain::views::iso;
use omnibiz_service::auth::unix_now;

use super::*;

/// Why a session ended, as its `session_ended` event says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionEnd {
    /// The token's `exp` (plus the leeway) passed without a refresh.
    Expired,
    /// The principal's sessions were revoked.
    Revoked,
    /// The account was deleted (in the main app).
    AccountDeleted,
}

impl SessionEnd {
    fn reason(self) -> &'static str {
        match self {
            Self::Expired => "token_expired",
            Self::Revoked => "revoked",
            Self::AccountDeleted => "account_deleted",
        }
    }

    fn message(self) -> &'static str {
        match self {
            Self::Expired => {
                "your session expired: connect again with a fresh token (send refresh_token before it ends)"
            }
            Self::Revoked => "your sessions were ended: sign in again",
            Self::AccountDeleted => "this account no longer exists",
        }
    }
}

/// Tells a connection why its session ended, then closes it: the event,
/// a Socket.IO DISCONNECT (`41`), and the transport's close once both are written.
pub(super) fn end_session(handle: &Arc<dyn Connection>, why: SessionEnd) {
    let told = json!({"reason": why.reason(), "message": why.message()});
    let _ = handle.send(&OutEvent::new("session_ended", told));
    let _ = handle.send(&OutEvent::disconnect());
    handle.close(CloseReason::ServerShutdown);
    metrics::counter!("gateway_sessions_ended_total", "reason" => why.reason()).increment(1);
}

impl Hub {
    /// Ends every connection whose token expired more than the leeway
    /// before `now` (Unix seconds); returns how many.
    pub fn expire_sessions(&self, now: u64) -> usize {
        let leeway = self.verifier.leeway();
        let ended: Vec<Arc<dyn Connection>> = self
            .lock()
            .conns
            .values()
            .filter(|c| c.expires_at.saturating_add(leeway) <= now)
            .map(|c| Arc::clone(&c.handle))
            .collect();
        for h in &ended {
            end_session(h, SessionEnd::Expired);
        }
        ended.len()
    }

    /// Ends every local connection of `party`; returns how many.
    pub fn end_sessions_of(&self, party: Party, why: SessionEnd) -> usize {
        let ended: Vec<Arc<dyn Connection>> = {
            let ix = self.lock();
            let ids = ix.personal.get(&party).map(|p| p.conns.clone()).unwrap_or_default();
            ids.iter().filter_map(|id| ix.conns.get(id)).map(|c| Arc::clone(&c.handle)).collect()
        };
        for h in &ended {
            end_session(h, why);
        }
        ended.len()
    }

    /// `refresh_token {token}`: a fresh token for the same principal
    /// extends this connection's session to its `exp`.
    pub(super) async fn refresh(&self, id: ConnId, actor: &Actor, data: &Value) -> Result<Value, EventError> {
        let token = data
            .get("token")
            .and_then(Value::as_str)
            .ok_or_else(|| EventError::new("VALIDATION_ERROR", "refresh_token takes {token}"))?;
        let session = self
            .verifier
            .verify_session(token.trim_start_matches("Bearer "))
            .map_err(|e| EventError::new("UNAUTHORIZED", e.to_string()))?;
        if session.principal.party() != actor.principal.party() {
            return Err(EventError::new(
                "TOKEN_MISMATCH",
                "the new token is someone else's: connect again with it instead",
            ));
        }
        self.messaging.session_actor(&session).await?;
        let expires_at = {
            let mut ix = self.lock();
            let conn = ix.conns.get_mut(&id).ok_or_else(|| EventError::new("CLOSED", "connection closed"))?;
            conn.expires_at = conn.expires_at.max(session.expires_at);
            conn.expires_at
        };
        metrics::counter!("gateway_sessions_refreshed_total").increment(1);
        let at = chrono::DateTime::from_timestamp(i64::try_from(expires_at).unwrap_or(i64::MAX), 0).unwrap_or_default();
        Ok(json!({"expiresAt": iso(at)}))
    }
}

/// Ends expired sessions every `every`, until the hub is dropped.
/// Re-checks, every `every`, that the accounts of this gateway's connected
/// principals still exist, and ends the sessions of those that do not
/// (accounts belong to the main app, which deletes them without telling
/// us; it can end them at once by publishing `session.revoked` instead).
pub fn spawn_account_check(hub: std::sync::Weak<Hub>, every: Duration) -> JoinHandle<()> {
    super::tasks::spawn_every(hub, every, |hub| async move {
        let parties: Vec<Party> = hub.lock().personal.keys().copied().collect();
        if parties.is_empty() {
            return;
        }
        match hub.messaging.accounts_gone(&parties).await {
            Ok(gone) => {
                for party in gone {
                    let n = hub.end_sessions_of(party, SessionEnd::AccountDeleted);
                    tracing::info!(principal = %party.room(), connections = n, "account deleted: sessions ended");
                }
            }
            Err(e) => tracing::warn!(error = %e, "checking connected accounts failed; retrying next round"),
        }
    })
}

pub fn spawn_session_expiry(hub: std::sync::Weak<Hub>, every: Duration) -> JoinHandle<()> {
    super::tasks::spawn_every(hub, every, |hub| async move {
        let n = hub.expire_sessions(unix_now());
        if n > 0 {
            tracing::info!(connections = n, "ended sessions whose token expired");
        }
    })
}
