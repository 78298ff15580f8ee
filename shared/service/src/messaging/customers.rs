//! An owner's customer list, with their conversations and presence.

use std::collections::HashMap;

use omnibiz_domain::views::CustomerView;
use omnibiz_domain::{Conversation, CustomerId};
use omnibiz_store::CustomerQuery;
use tracing::instrument;

use super::{Actor, MAX_CUSTOMERS_PAGE, Messaging, ServiceError, ServiceResult, page_size};

/// Paging for the customer list.
#[derive(Debug, Clone, Default)]
pub struct CustomerPage {
    pub limit: Option<usize>,
    pub cursor: Option<String>,
    pub q: Option<String>,
}

impl Messaging {
    /// The business owner's customers with stats and chat state, newest first.
    #[instrument(skip_all, fields(principal = %actor.principal.room()))]
    pub async fn list_customers(
        &self,
        actor: &Actor,
        page: CustomerPage,
    ) -> ServiceResult<(Vec<CustomerView>, Option<String>)> {
        let Some(owner) = actor.business() else {
            return Err(ServiceError::Forbidden("only business owners can list customers".into()));
        };
        let limit = page_size(page.limit, MAX_CUSTOMERS_PAGE)?;
        let before = page
            .cursor
            .as_deref()
            .map(|c| c.parse::<CustomerId>().map_err(|_| ServiceError::Invalid("cursor is malformed".into())))
            .transpose()?;
        let q = CustomerQuery { owner, q: omnibiz_domain::search_term(page.q.as_deref()), before, limit };
        let customers = self.store.list_customers(&q).await?;
        let ids: Vec<CustomerId> = customers.iter().map(|c| c.id).collect();
        let convs: HashMap<CustomerId, Conversation> =
            self.store.conversations_with(owner, &ids).await?.into_iter().map(|c| (c.customer_id, c)).collect();
        let rooms: Vec<String> = ids.iter().map(|id| format!("customer:{id}")).collect();
        let online = self.presence.online(&rooms).await;
        let views = customers.iter().zip(online).map(|(c, on)| CustomerView::new(c, convs.get(&c.id), on)).collect();
        let next = (customers.len() == limit).then(|| customers.last().map(|c| c.id.to_hex())).flatten();
        Ok((views, next))
    }
}
