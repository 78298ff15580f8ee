//! The error responses the REST routes document, declared once: each route
//! lists the sets it can answer (`responses((status = 200, body = X),
//! WriteErrors)`) instead of repeating `(status = …, body = ErrorBody)`.
//! Every one is `{success:false, message, code}` ([`ErrorBody`]).

use std::collections::BTreeMap;

use utoipa::openapi::{ContentBuilder, Ref, RefOr, Response, ResponseBuilder};

#[cfg(doc)]
use crate::error::ErrorBody;

/// One error response: JSON with the `ErrorBody` schema.
fn error_response() -> RefOr<Response> {
    let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
    RefOr::T(ResponseBuilder::new().description("").content("application/json", content).build())
}

macro_rules! error_sets {
    ($($(#[doc = $doc:literal])* $name:ident = [$($status:literal),+];)*) => {$(
        $(#[doc = $doc])*
        pub(crate) struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses() -> BTreeMap<String, RefOr<Response>> {
                [$($status),+].into_iter().map(|s: u16| (s.to_string(), error_response())).collect()
            }
        }
    )*};
}

error_sets! {
    /// A read of something that may not exist or not be the caller's: 400, 401, 404.
    ReadErrors = [400, 401, 404];
    /// A change the caller's role may not be allowed to make: 400, 401, 403, 404.
    WriteErrors = [400, 401, 403, 404];
    /// A body over a size limit (413) or of a type not accepted (415).
    UploadErrors = [413, 415];
    /// Malformed input: 400.
    BadRequest = [400];
    /// No valid token, or an unknown account: 401.
    Unauthorized = [401];
    /// This role may not do this: 403.
    Forbidden = [403];
    /// The change clashes with existing data: 409.
    Conflict = [409];
    /// File storage is not configured on this server: 501.
    NotConfigured = [501];
    /// Storage cannot be reached now: 503.
    Unavailable = [503];
}

/// Adds 429 (with `Retry-After`) to every operation that takes a token: each
/// of them draws from one of the caller's rate-limit buckets (see `Authed`).
pub(crate) struct RateLimitedResponses;

impl utoipa::Modify for RateLimitedResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let content = ContentBuilder::new().schema(Some(Ref::from_schema_name("ErrorBody"))).build();
        let retry_after = utoipa::openapi::HeaderBuilder::new()
            .schema(utoipa::openapi::ObjectBuilder::new().schema_type(utoipa::openapi::schema::Type::Integer))
            .description(Some("Seconds until the caller's bucket for this kind of request has room again"))
            .build();
        let response = ResponseBuilder::new()
            .description("Too many requests of this kind from this caller (`RATE_LIMITED`)")
            .content("application/json", content)
            .header("Retry-After", retry_after)
            .build();
        for item in openapi.paths.paths.values_mut() {
            let ops = [&mut item.get, &mut item.post, &mut item.patch, &mut item.put, &mut item.delete];
            for op in ops.into_iter().flatten() {
                if op.responses.responses.contains_key("401") {
                    op.responses.responses.insert("429".into(), RefOr::T(response.clone()));
                }
            }
        }
    }
}
