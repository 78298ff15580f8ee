//! Full-text search over the messages a caller can see.

use chrono::{DateTime, Utc};
use omnibiz_domain::views::MessageView;
use omnibiz_domain::{Conversation, Message, MessageId};
use tracing::instrument;

use super::{Actor, Messaging, ServiceError, ServiceResult, page_size};

/// One message found by a search, with where it is and why it matched.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SearchHit {
    pub message: MessageView,
    pub conversation_id: String,
    /// The other side's name, as in the conversation list.
    pub conversation_name: String,
    /// Up to about 180 characters around the first match (`…` where cut).
    pub snippet: String,
    /// The matches in `snippet`, as character ranges (never markup: the text is the user's).
    pub highlights: Vec<omnibiz_domain::search::Highlight>,
}

/// Most search results per page.
pub const MAX_SEARCH_PAGE: usize = 50;

impl Messaging {
    /// Finds the caller's messages (an owner's in all their conversations, a
    /// customer's in theirs): words match as prefixes, `"quoted words"` as
    /// phrases, every term must match. Newest first; deleted messages never.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn search_messages(
        &self,
        actor: &Actor,
        q: &str,
        cursor: Option<&str>,
        limit: Option<usize>,
    ) -> ServiceResult<(Vec<SearchHit>, Option<String>)> {
        use omnibiz_domain::search::{SearchQuery, snippet};
        let query = SearchQuery::parse(q).map_err(|e| ServiceError::Invalid(format!("q: {e}")))?;
        let limit = page_size(limit, MAX_SEARCH_PAGE)?;
        // The cursor is checked even when nothing can match: a malformed one is always a 400.
        let bad = || ServiceError::Invalid("cursor is malformed".into());
        let before = match cursor {
            None => None,
            Some(c) => {
                let (ms, id) = c.split_once('_').ok_or_else(bad)?;
                let at = DateTime::<Utc>::from_timestamp_millis(ms.parse().map_err(|_| bad())?).ok_or_else(bad)?;
                Some((at, id.parse::<MessageId>().map_err(|_| bad())?))
            }
        };
        if query.terms.is_empty() {
            return Ok((Vec::new(), None));
        }
        let party = actor.party();
        // Stores may return near misses (the final check is here): fetch a few more.
        let fetch = limit * 2;
        let candidates = self.store.search_messages(party, &query, before, fetch).await?;
        let position = |m: &Message| format!("{}_{}", m.created_at.timestamp_millis(), m.id);
        let mut found: Vec<(Message, String, Vec<omnibiz_domain::search::Highlight>)> = Vec::new();
        let mut next = None;
        for m in &candidates {
            if let Some((text, marks)) = snippet(&m.content, &query) {
                found.push((m.clone(), text, marks));
                if found.len() == limit {
                    next = Some(position(m));
                    break;
                }
            }
        }
        if next.is_none() && candidates.len() == fetch {
            next = candidates.last().map(position);
        }
        // Name each result's conversation as the conversation list does.
        let mut convs: Vec<Conversation> = Vec::new();
        for (m, _, _) in &found {
            if !convs.iter().any(|c| c.id == m.conversation_id)
                && let Some(c) = self.store.get_conversation(m.conversation_id).await?
            {
                convs.push(c);
            }
        }
        // An agent who sees only some of the business's conversations finds only in those.
        convs.retain(|c| crate::auth::Access::of(&actor.principal, actor.seat, c) != crate::auth::Access::Hidden);
        found.retain(|(m, _, _)| convs.iter().any(|c| c.id == m.conversation_id));
        let views = self.views(actor, &convs).await?;
        let hits = found
            .into_iter()
            .map(|(m, snippet, highlights)| {
                let name = views.iter().find(|v| v.id == m.conversation_id.to_hex()).map(|v| v.name.clone());
                SearchHit {
                    conversation_id: m.conversation_id.to_hex(),
                    conversation_name: name.unwrap_or_default(),
                    message: MessageView::from(&m),
                    snippet,
                    highlights,
                }
            })
            .collect();
        Ok((hits, next))
    }
}
