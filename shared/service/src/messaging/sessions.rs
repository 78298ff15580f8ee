//! Sessions: who may still use a token, and ending sessions everywhere.
//!
//! A session is a token's life on a connection. It ends when the token
//! expires (gateways close the socket at `exp` plus the leeway unless a
//! fresh token extends it), when the account is gone, or when the
//! principal's sessions are revoked: the revocation is stored (so the old
//! token cannot simply connect again) and published on the principal's
//! topic, where every gateway holding one of its sockets closes it.

use chrono::{DateTime, Utc};
use omnibiz_domain::Party;
use omnibiz_domain::views::iso;
use serde_json::json;

use super::{Actor, Messaging, ServiceError, ServiceResult};
use crate::auth::{Principal, Session};
use crate::bus::{EventKind, Topic};

impl Messaging {
    /// Which of `parties` have no account any more (deleted in the main
    /// app): a gateway ends their sockets. Reads ids only, in batches.
    pub async fn accounts_gone(&self, parties: &[Party]) -> ServiceResult<Vec<Party>> {
        let mut gone = Vec::new();
        for chunk in parties.chunks(500) {
            let found = self.store.existing_accounts(chunk).await?;
            gone.extend(chunk.iter().filter(|p| !found.contains(p)).copied());
        }
        Ok(gone)
    }

    /// The actor behind a verified token, when its session may go on: the
    /// account exists, and the token was issued after the principal's
    /// sessions were last revoked (tokens issued in the same second as a
    /// revocation count as before it). The revocation time is cached with
    /// the account (`OMNIBIZ_ACCOUNT_CACHE_SECS` on API pods; gateways keep
    /// no cache and read it on every connect).
    pub async fn session_actor(&self, session: &Session) -> ServiceResult<Actor> {
        let (actor, revoked) = self.account(session.principal).await?;
        if let Some(revoked) = revoked
            && session.issued_at.is_none_or(|iat| i64::try_from(iat).unwrap_or(i64::MAX) <= revoked)
        {
            return Err(ServiceError::Unauthorized("this session was revoked; sign in again".into()));
        }
        Ok(actor)
    }

    /// Ends every session of `target` now, on every pod: its live sockets
    /// are closed (reason `revoked`) and tokens issued until now are refused.
    /// Anyone may end their own sessions; a business owner also those of a
    /// customer they invited. Another principal is answered as not found.
    pub async fn revoke_sessions(&self, actor: &Actor, target: Party) -> ServiceResult<DateTime<Utc>> {
        let allowed = match (actor.principal, target) {
            (p, t) if p.party() == t => true,
            (Principal::User { .. }, Party::Customer(c)) => {
                self.store.get_customer(c).await?.is_some_and(|c| actor.business() == Some(c.invited_by))
            }
            _ => false,
        };
        if !allowed {
            return Err(ServiceError::NotFound("no such user or customer".into()));
        }
        let at = Utc::now();
        self.store.revoke_sessions(target, at).await?;
        // This process sees it at once; other API pods within the account TTL.
        self.forget_account(target);
        let payload = json!({"reason": "revoked", "revokedAt": iso(at)});
        self.publish(Topic::Principal(target), EventKind::SessionRevoked, None, payload, None).await;
        Ok(at)
    }
}
