//! Files: `POST /api/messages/conversations/{id}/attachments` (multipart
//! upload), `GET /api/messages/attachments/{id}` (signed links), and the
//! download endpoints `…/{id}/content` and `…/{id}/thumbnail` (a token or a
//! signed link).

use axum::Router;
use axum::body::Body;
use axum::extract::multipart::{Multipart, MultipartRejection};
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HeaderValue,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use omnibiz_domain::{Attachment, ConversationId, UploadId};
use omnibiz_service::files::{Variant, content_disposition};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::ApiState;
use crate::error::{ApiError, ApiResult};
use crate::extract::{Authed, Json, Query};
use crate::openapi::{NotConfigured, ReadErrors, Unavailable, UploadErrors, WriteErrors};

pub(crate) fn router() -> Router<ApiState> {
    Router::new()
        .route(
            "/api/messages/conversations/{conversation_id}/attachments",
            // The upload's own limit (`OMNIBIZ_UPLOAD_MAX_BYTES`) applies while it streams.
            post(upload).layer(DefaultBodyLimit::disable()),
        )
        .route("/api/messages/attachments/{upload_id}", get(links))
        .route("/api/messages/attachments/{upload_id}/content", get(content))
        .route("/api/messages/attachments/{upload_id}/thumbnail", get(thumbnail))
}

/// The multipart form of an upload.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // documents the form; the handler streams it part by part
pub(crate) struct UploadForm {
    /// The file (one part named `file`; its filename is kept, cleaned).
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
}

#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UploadResponse {
    success: bool,
    /// Send it with a message as `attachments: [{"id": …}]`.
    attachment: Attachment,
}

/// Upload a file to a conversation you are in. The type is sniffed from
/// the content (`OMNIBIZ_UPLOAD_TYPES`); images get a thumbnail. Attach it
/// to a message within `OMNIBIZ_UPLOAD_ORPHAN_SECS` or it is deleted.
#[utoipa::path(post, path = "/api/messages/conversations/{conversationId}/attachments", tag = "attachments",
    params(("conversationId" = String, Path, pattern = "^[0-9a-fA-F]{24}$")),
    request_body(content = UploadForm, content_type = "multipart/form-data"), security(("bearer" = [])),
    responses((status = 201, body = UploadResponse), WriteErrors, UploadErrors, NotConfigured, Unavailable))]
pub(crate) async fn upload(
    state: State<ApiState>,
    actor: Authed,
    conversation_id: Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> Response {
    match store_upload(state, actor, conversation_id, form).await {
        Ok(created) => created.into_response(),
        Err(e) => {
            // A refused upload may leave part of its body unread: the
            // connection cannot carry another request, so say so.
            let mut r = e.into_response();
            r.headers_mut().insert(axum::http::header::CONNECTION, HeaderValue::from_static("close"));
            r
        }
    }
}

async fn store_upload(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(conversation_id): Path<String>,
    form: Result<Multipart, MultipartRejection>,
) -> ApiResult<(StatusCode, Json<UploadResponse>)> {
    let conv: ConversationId =
        conversation_id.parse().map_err(|e| ApiError::invalid(format!("conversation id: {e}")))?;
    let mut form = form.map_err(|r| ApiError::BadInput {
        status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        message: format!("expected a multipart/form-data body with a `file` part ({})", r.body_text()),
        code: "UNSUPPORTED_MEDIA_TYPE",
    })?;
    loop {
        let field =
            form.next_field().await.map_err(|e| ApiError::invalid(format!("multipart body: {}", e.body_text())))?;
        let Some(field) = field else {
            return Err(ApiError::invalid("the multipart body has no part named `file`"));
        };
        if field.name() != Some("file") {
            continue;
        }
        let name = field.file_name().unwrap_or("file").to_owned();
        let attachment = s.messaging.upload(&actor, conv, &name, Box::pin(field)).await?;
        return Ok((StatusCode::CREATED, Json(UploadResponse { success: true, attachment })));
    }
}

#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LinksResponse {
    success: bool,
    attachment: Attachment,
    /// The file, without a token, until `expiresAt` (for `<img src>` or a download link).
    url: String,
    /// The thumbnail the same way, for images.
    #[serde(skip_serializing_if = "Option::is_none")]
    thumbnail_url: Option<String>,
    expires_at: String,
}

/// Short-lived signed links to an attachment (participants of its conversation only).
#[utoipa::path(get, path = "/api/messages/attachments/{uploadId}", tag = "attachments",
    params(("uploadId" = String, Path, pattern = "^[0-9a-fA-F]{24}$")), security(("bearer" = [])),
    responses((status = 200, body = LinksResponse), ReadErrors, NotConfigured))]
pub(crate) async fn links(
    State(s): State<ApiState>,
    Authed(actor): Authed,
    Path(upload_id): Path<String>,
) -> ApiResult<Json<LinksResponse>> {
    let id = parse_upload(&upload_id)?;
    let (upload, files) = s.messaging.visible_upload(&actor, id).await?;
    let now = Utc::now();
    let (url, expires) = files.signed_url(id, Variant::Content, now);
    let thumbnail_url = upload.has_thumbnail.then(|| files.signed_url(id, Variant::Thumbnail, now).0);
    let attachment = files.attachment(&upload);
    Ok(Json(LinksResponse {
        success: true,
        attachment,
        url,
        thumbnail_url,
        expires_at: omnibiz_domain::views::iso(expires),
    }))
}

/// A signed link's query.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct LinkParams {
    /// Unix seconds after which the link is refused.
    #[param(minimum = 0)]
    expires: Option<i64>,
    /// Hex HMAC of the link.
    #[param(pattern = "^[0-9a-f]{64}$")]
    sig: Option<String>,
}

/// Download an attachment: with a participant's token, or a signed link
/// from `GET /api/messages/attachments/{uploadId}`. Raster images are served
/// inline, everything else as a download; never rendered as a page.
#[utoipa::path(get, path = "/api/messages/attachments/{uploadId}/content", tag = "attachments",
    params(("uploadId" = String, Path, pattern = "^[0-9a-fA-F]{24}$"), LinkParams),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The file, with the type sniffed at upload", content_type = "*/*"), ReadErrors, NotConfigured))]
pub(crate) async fn content(
    State(s): State<ApiState>,
    Path(upload_id): Path<String>,
    Query(link): Query<LinkParams>,
    parts: Parts,
) -> ApiResult<Response> {
    download(&s, &upload_id, link, &parts, Variant::Content).await
}

/// Download an image attachment's thumbnail (a JPEG of at most 320×320), like `…/content`.
#[utoipa::path(get, path = "/api/messages/attachments/{uploadId}/thumbnail", tag = "attachments",
    params(("uploadId" = String, Path, pattern = "^[0-9a-fA-F]{24}$"), LinkParams),
    security((), ("bearer" = [])),
    responses((status = 200, description = "The thumbnail", content_type = "image/jpeg"), ReadErrors, NotConfigured))]
pub(crate) async fn thumbnail(
    State(s): State<ApiState>,
    Path(upload_id): Path<String>,
    Query(link): Query<LinkParams>,
    parts: Parts,
) -> ApiResult<Response> {
    download(&s, &upload_id, link, &parts, Variant::Thumbnail).await
}

fn parse_upload(raw: &str) -> ApiResult<UploadId> {
    raw.parse().map_err(|e| ApiError::invalid(format!("upload id: {e}")))
}

async fn download(s: &ApiState, raw: &str, link: LinkParams, parts: &Parts, variant: Variant) -> ApiResult<Response> {
    let id = parse_upload(raw)?;
    // A malformed link is refused as such, token or not.
    if link.expires.is_some_and(|e| e < 0)
        || link
            .sig
            .as_deref()
            .is_some_and(|s| s.len() != 64 || !s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
    {
        return Err(ApiError::invalid("expires must be a time in seconds and sig 64 lowercase hex digits"));
    }
    let (upload, files) = if parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
        // The same check as every other route (`Authed`): a revoked session downloads nothing.
        let session = s.verifier.verify_session(crate::extract::bearer(parts)?)?;
        let actor = s.messaging.session_actor(&session).await?;
        s.messaging.check_rate(actor.principal.party(), omnibiz_service::limits::Action::Read)?;
        s.messaging.visible_upload(&actor, id).await?
    } else {
        let (Some(expires), Some(sig)) = (link.expires, link.sig.as_deref()) else {
            return Err(omnibiz_service::auth::AuthError::Missing.into());
        };
        let files = s.messaging.files().ok_or_else(|| {
            ApiError::Service(omnibiz_service::messaging::ServiceError::Disabled(
                "file uploads are not configured".into(),
            ))
        })?;
        if !files.verify(id, variant, expires, sig, Utc::now()) {
            return Err(ApiError::BadInput {
                status: StatusCode::UNAUTHORIZED,
                message: "the link is invalid or has expired; ask for a new one".into(),
                code: "INVALID_LINK",
            });
        }
        s.messaging.upload_by_link(id).await?
    };
    if variant == Variant::Thumbnail && !upload.has_thumbnail {
        return Err(ApiError::Service(omnibiz_service::messaging::ServiceError::NotFound(
            "this attachment has no thumbnail".into(),
        )));
    }
    let opened = files.open(id, variant).await.map_err(omnibiz_service::messaging::ServiceError::from)?;
    let (mime, name) = match variant {
        Variant::Content => (upload.mime_type.clone(), upload.name.clone()),
        Variant::Thumbnail => ("image/jpeg".to_owned(), format!("{}.thumbnail.jpg", upload.name)),
    };
    let mut headers = HeaderMap::new();
    let header =
        |v: &str| HeaderValue::from_str(v).unwrap_or_else(|_| HeaderValue::from_static("application/octet-stream"));
    headers.insert(CONTENT_TYPE, header(&mime));
    headers.insert(CONTENT_LENGTH, HeaderValue::from(opened.size));
    headers.insert(CONTENT_DISPOSITION, header(&content_disposition(&name, &mime)));
    headers.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static("default-src 'none'; sandbox"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    Ok((headers, Body::from_stream(opened.body)).into_response())
}
