//! One module per REST resource, each with its own `router()`, merged in [`router`].

pub(crate) mod account;
pub(crate) mod attachments;
pub(crate) mod conversations;
pub(crate) mod customers;
pub(crate) mod groups;
pub(crate) mod health;
pub(crate) mod messages;
pub(crate) mod notifications;
mod params;
pub(crate) mod quick_replies;
pub(crate) mod reactions;
pub(crate) mod search;
pub(crate) mod sessions;
pub(crate) mod team;
pub(crate) mod webhooks;

use axum::Router;

use crate::ApiState;

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .merge(account::router())
        .merge(conversations::router())
        .merge(messages::router())
        .merge(customers::router())
        .merge(webhooks::router())
        .merge(attachments::router())
        .merge(search::router())
        .merge(quick_replies::router())
        .merge(reactions::router())
        .merge(sessions::router())
        .merge(notifications::router())
        .merge(team::router())
        .merge(groups::router())
}
