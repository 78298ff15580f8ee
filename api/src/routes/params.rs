//! Query parameters and responses more than one resource shares.

use omnibiz_service::messaging::ReadReceipt;
use serde::Serialize;
use utoipa::ToSchema;

/// Paging and search of the conversation list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListParams {
    /// Page size; default 200, larger values are capped at 200.
    #[param(minimum = 1, maximum = 2147483647)]
    pub(crate) limit: Option<i32>,
    /// `nextCursor` of the previous page.
    #[param(pattern = "^[0-9]{1,13}_[0-9a-fA-F]{24}$")]
    pub(crate) cursor: Option<String>,
    /// Case-insensitive search on name, email or phone (of the other side, for conversations).
    pub(crate) q: Option<String>,
    /// Which conversations: `all` (the default, as the seed lists them), `active` or `archived` (for the caller).
    #[param(inline)]
    pub(crate) filter: Option<ListFilter>,
    /// The business side's filter by assignee: `mine`, `unassigned`, or `all`
    /// (the default: every conversation the caller may see). Ignored for customers.
    #[param(inline)]
    pub(crate) assigned: Option<AssignedParam>,
}

/// The conversation list's filter by assignee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum AssignedParam {
    Mine,
    Unassigned,
    All,
}

impl AssignedParam {
    pub(crate) fn filter(p: Option<Self>) -> Option<omnibiz_service::messaging::AssignedFilter> {
        use omnibiz_service::messaging::AssignedFilter;
        p.map(|p| match p {
            Self::Mine => AssignedFilter::Mine,
            Self::Unassigned => AssignedFilter::Unassigned,
            Self::All => AssignedFilter::All,
        })
    }
}

/// The conversation list's filter by the caller's own archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ListFilter {
    All,
    Active,
    Archived,
}

impl ListFilter {
    pub(crate) fn archived(filter: Option<Self>) -> Option<bool> {
        match filter {
            None | Some(Self::All) => None,
            Some(Self::Active) => Some(false),
            Some(Self::Archived) => Some(true),
        }
    }
}

/// Paging and search of the customer list.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CustomerListParams {
    /// Page size; default 200, larger values are capped at 200.
    #[param(minimum = 1, maximum = 2147483647)]
    pub(crate) limit: Option<i32>,
    /// `nextCursor` of the previous page.
    #[param(pattern = "^[0-9a-fA-F]{24}$")]
    pub(crate) cursor: Option<String>,
    /// Case-insensitive search on name, email or phone (of the other side, for conversations).
    pub(crate) q: Option<String>,
}

/// Result of a mark-read call.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ReadResponse {
    success: bool,
    conversation_id: String,
    /// The caller has read every message up to and including this `seq`.
    up_to_seq: i64,
    /// The caller's unread count after the call.
    unread_count: i64,
}

impl From<ReadReceipt> for ReadResponse {
    fn from(r: ReadReceipt) -> Self {
        Self { success: true, conversation_id: r.conversation_id, up_to_seq: r.up_to_seq, unread_count: r.unread_count }
    }
}
