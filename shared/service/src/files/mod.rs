//! Files attached to messages.
//!
//! - **Where**: object storage through the `object_store` crate — an
//!   S3-compatible bucket for pods (`OMNIBIZ_S3_*`), a directory under the
//!   data dir in `serve` (`OMNIBIZ_FILES_DIR`). Objects are
//!   `uploads/<id>` and, for images, `uploads/<id>.thumb.jpg`.
//! - **Upload**: streamed. The first bytes decide the type (magic numbers,
//!   never the client's word); the rest goes to storage part by part, so a
//!   process holds at most three 5 MiB parts per upload (one filling, two
//!   on their way to storage), and an upload over
//!   the limit is aborted as soon as it passes it. Images are decoded once,
//!   within pixel and memory limits, for a thumbnail: a file that says it is
//!   an image and does not decode is refused. Audio (voice messages) is
//!   decoded once, within time and length limits, for its duration and a
//!   waveform ([`audio`]): a file that does not decode is refused.
//! - **Records**: the store keeps an [`Upload`] per file, written *before*
//!   the object, so every object has a record to clean it up by. A send
//!   claims the uploads it attaches (only the uploader's, only in their
//!   conversation, only once), and confirms them after the message is stored.
//! - **Cleanup** (`crate::jobs::sweeper`): an upload still unconfirmed after
//!   `OMNIBIZ_UPLOAD_ORPHAN_SECS` is deleted — unless a message in its
//!   conversation refers to it (a process died between storing the message
//!   and confirming), in which case it is confirmed. Deleting a message
//!   unconfirms its uploads *first*, so a crash midway leaves work for the
//!   sweeper, never a file without a record or a message without its file.
//! - **Download**: only the two participants: with their token, or with a
//!   short-lived link signed by the server (`expires` + HMAC) that a browser
//!   can put in `<img src>`. Responses never render active content: raster
//!   images inline, everything else as an attachment, always `nosniff` and a
//!   sandboxing CSP.

pub mod audio;
mod error;
mod thumb;

pub use error::FileError;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt as _};
use hmac::{Hmac, Mac as _};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, WriteMultipart};
use omnibiz_domain::{AudioInfo, UploadId};
use sha2::Sha256;

/// Bytes read before deciding the type.
const SNIFF_BYTES: usize = 8 * 1024;
/// Longest file name kept (characters).
const MAX_NAME_CHARS: usize = 255;

/// Types accepted when `OMNIBIZ_UPLOAD_TYPES` is not set.
pub const DEFAULT_TYPES: &str =
    "image/png,image/jpeg,image/gif,image/webp,application/pdf,audio/webm,audio/ogg,audio/mp4,audio/mpeg";

/// Raster images: served inline and thumbnailed.
pub fn is_raster_image(mime: &str) -> bool {
    matches!(mime, "image/png" | "image/jpeg" | "image/gif" | "image/webp")
}

/// Where an upload's object lives.
pub fn object_path(id: UploadId) -> ObjectPath {
    ObjectPath::from(format!("uploads/{id}"))
}

fn thumb_path(id: UploadId) -> ObjectPath {
    ObjectPath::from(format!("uploads/{id}.thumb.jpg"))
}

/// Which bytes of an upload a link is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    Content,
    Thumbnail,
}

impl Variant {
    fn as_str(self) -> &'static str {
        match self {
            Self::Content => "content",
            Self::Thumbnail => "thumbnail",
        }
    }
}

/// Limits and naming (`upload_*` settings).
#[derive(Debug, Clone)]
pub struct FilesConfig {
    /// Largest upload, in bytes.
    pub max_bytes: u64,
    /// Media types accepted (as sniffed).
    pub allowed_types: Vec<String>,
    /// Prefix of the URLs put into messages (`OMNIBIZ_PUBLIC_URL`); relative when unset.
    pub public_url: Option<String>,
    /// Lifetime of a signed download link.
    pub link_ttl: Duration,
    /// An upload no message confirmed is deleted after this long.
    pub orphan_after: Duration,
    /// Bounds of decoding an audio upload.
    pub audio: audio::Limits,
}

impl Default for FilesConfig {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            allowed_types: DEFAULT_TYPES.split(',').map(str::to_owned).collect(),
            public_url: None,
            link_ttl: Duration::from_secs(300),
            orphan_after: Duration::from_secs(24 * 3600),
            audio: audio::Limits::default(),
        }
    }
}

/// A file as written: what the record needs.
#[derive(Debug, Clone)]
pub struct Stored {
    pub mime_type: String,
    pub size: u64,
    pub has_thumbnail: bool,
    pub audio: Option<AudioInfo>,
}

/// A file opened for download.
pub struct Opened {
    pub size: u64,
    pub body: BoxStream<'static, Result<Bytes, FileError>>,
}

/// Object storage for uploads, with the link signer.
pub struct Files {
    objects: Arc<dyn ObjectStore>,
    describe: String,
    key: Vec<u8>,
    pub config: FilesConfig,
    /// Thumbnails and audio summaries decode whole files: a few at a time.
    /// A permit is held by the decode itself, not by the request that started it: a client that
    /// disconnects mid-decode does not free a slot while the memory is in use.
    decoding: Arc<tokio::sync::Semaphore>,
}

impl std::fmt::Debug for Files {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Files").field("storage", &self.describe).finish_non_exhaustive()
    }
}

/// Where an S3-compatible bucket is.
#[derive(Debug, Clone)]
pub struct S3Location {
    pub bucket: String,
    pub region: String,
    /// For S3-compatible servers (MinIO, Ceph, moto); AWS when unset.
    pub endpoint: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
}

/// Decodes (thumbnails, audio) at once per process (a thumbnail may allocate up to 256 MiB).
pub const DECODES: usize = 2;

impl Files {
    fn new(objects: Arc<dyn ObjectStore>, describe: String, key: &[u8], config: FilesConfig) -> Self {
        Self { objects, describe, key: key.to_vec(), config, decoding: Arc::new(tokio::sync::Semaphore::new(DECODES)) }
    }

    /// Files in a local directory (created if missing).
    pub fn local(dir: &Path, key: &[u8], config: FilesConfig) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating the files directory {}", dir.display()))?;
        let fs = object_store::local::LocalFileSystem::new_with_prefix(dir)
            .with_context(|| format!("opening the files directory {}", dir.display()))?;
        Ok(Self::new(Arc::new(fs), format!("local directory {}", dir.display()), key, config))
    }

    /// Files in an S3-compatible bucket. Credentials not given here come
    /// from the usual `AWS_*` environment variables.
    pub fn s3(at: &S3Location, key: &[u8], config: FilesConfig) -> anyhow::Result<Self> {
        let mut b = object_store::aws::AmazonS3Builder::from_env().with_bucket_name(&at.bucket).with_region(&at.region);
        if let Some(e) = &at.endpoint {
            b = b.with_endpoint(e).with_allow_http(e.starts_with("http://")).with_virtual_hosted_style_request(false);
        }
        if let Some(k) = &at.access_key_id {
            b = b.with_access_key_id(k);
        }
        if let Some(s) = &at.secret_access_key {
            b = b.with_secret_access_key(s);
        }
        let s3 = b.build().with_context(|| format!("configuring the S3 bucket {}", at.bucket))?;
        let describe = match &at.endpoint {
            Some(e) => format!("S3 bucket {} at {e}", at.bucket),
            None => format!("S3 bucket {} ({})", at.bucket, at.region),
        };
        Ok(Self::new(Arc::new(s3), describe, key, config))
    }

    /// A link-signing key derived from another secret (the JWT secret), so
    /// pods that share that secret share it too.
    pub fn derive_key(secret: &[u8]) -> Vec<u8> {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes keys of any length");
        mac.update(b"omnibiz files: download links v1");
        mac.finalize().into_bytes().to_vec()
    }

    /// For logs and `/readyz`.
    pub fn describe(&self) -> &str {
        &self.describe
    }

    /// Checks that storage answers (a listing of at most one object).
    pub async fn check(&self) -> anyhow::Result<()> {
        let prefix = ObjectPath::from("uploads");
        let mut list = self.objects.list(Some(&prefix));
        match list.next().await {
            None | Some(Ok(_)) => Ok(()),
            Some(Err(e)) => Err(anyhow::Error::new(e).context(format!("reaching {}", self.describe))),
        }
    }

    /// Cleans a client's file name: the last path component, no control
    /// characters, at most 255 characters; `file` when nothing is left.
    pub fn clean_name(raw: &str) -> String {
        let last = raw.rsplit(['/', '\\']).next().unwrap_or("");
        let cleaned: String =
            last.chars().filter(|c| !c.is_control()).take(MAX_NAME_CHARS).collect::<String>().trim().to_owned();
        if cleaned.is_empty() || cleaned == "." || cleaned == ".." { "file".to_owned() } else { cleaned }
    }

    /// Streams `body` into storage as upload `id`: sniffs the type from the
    /// first bytes, refuses types not allowed, stops at the size limit, and
    /// thumbnails images. Nothing is left in storage when it fails.
    pub async fn store<S, E>(&self, id: UploadId, mut body: S) -> Result<Stored, FileError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin + Send,
        E: std::fmt::Display,
    {
        let limit = self.config.max_bytes;
        // The head: enough bytes to recognise the type.
        let mut head = Vec::with_capacity(SNIFF_BYTES);
        let mut rest: Option<Bytes> = None;
        while head.len() < SNIFF_BYTES {
            match body.next().await {
                None => break,
                Some(Err(e)) => return Err(FileError::Client(e.to_string())),
                Some(Ok(chunk)) => {
                    let take = (SNIFF_BYTES - head.len()).min(chunk.len());
                    head.extend_from_slice(&chunk[..take]);
                    if take < chunk.len() {
                        rest = Some(chunk.slice(take..));
                    }
                }
            }
        }
        if head.is_empty() {
            return Err(FileError::Empty);
        }
        let candidates = sniff_all(&head);
        let Some(&mime) = candidates.iter().find(|m| self.config.allowed_types.iter().any(|t| t == *m)) else {
            return Err(FileError::Type(match candidates.first() {
                None => "the file's type could not be recognised from its contents".to_owned(),
                Some(mime) => format!(
                    "files of type {mime} are not accepted (accepted: {})",
                    self.config.allowed_types.join(", ")
                ),
            }));
        };
        let path = object_path(id);
        let upload = self.objects.put_multipart(&path).await?;
        let mut writer = WriteMultipart::new(upload);
        let mut size = head.len() as u64;
        writer.write(&head);
        if let Some(r) = rest {
            size += r.len() as u64;
            writer.write(&r);
        }
        let outcome: Result<(), FileError> = async {
            loop {
                if size > limit {
                    return Err(FileError::TooLarge { limit });
                }
                // At most two parts in flight: memory stays bounded per upload.
                writer.wait_for_capacity(2).await?;
                match body.next().await {
                    None => return Ok(()),
                    Some(Err(e)) => return Err(FileError::Client(e.to_string())),
                    Some(Ok(chunk)) => {
                        size += chunk.len() as u64;
                        if size <= limit {
                            writer.write(&chunk);
                        }
                    }
                }
            }
        }
        .await;
        if let Err(e) = outcome {
            let _ = writer.abort().await;
            return Err(e);
        }
        writer.finish().await?;
        let mut has_thumbnail = false;
        let mut audio = None;
        let decoded = if is_raster_image(mime) {
            self.thumbnail(id).await.map(|()| has_thumbnail = true)
        } else if audio::Container::of_mime(mime).is_some() {
            self.audio(id).await.map(|a| audio = Some(a))
        } else {
            Ok(())
        };
        if let Err(e) = decoded {
            let _ = self.objects.delete(&path).await;
            return Err(e);
        }
        Ok(Stored { mime_type: mime.to_owned(), size, has_thumbnail, audio })
    }

    async fn audio(&self, id: UploadId) -> Result<AudioInfo, FileError> {
        let permit = Arc::clone(&self.decoding).acquire_owned().await.map_err(|e| FileError::Storage(e.into()))?;
        let bytes = self.objects.get(&object_path(id)).await?.bytes().await?;
        let limits = self.config.audio;
        let info = tokio::task::spawn_blocking(move || {
            let _held = permit;
            audio::summarize(bytes, limits)
        })
        .await
        .map_err(|e| FileError::Storage(e.into()))??;
        Ok(info)
    }

    async fn thumbnail(&self, id: UploadId) -> Result<(), FileError> {
        let permit = Arc::clone(&self.decoding).acquire_owned().await.map_err(|e| FileError::Storage(e.into()))?;
        let bytes = self.objects.get(&object_path(id)).await?.bytes().await?;
        let jpeg = tokio::task::spawn_blocking(move || {
            let _held = permit;
            thumb::make(&bytes)
        })
        .await
        .map_err(|e| FileError::Storage(e.into()))??;
        self.objects.put(&thumb_path(id), jpeg.into()).await?;
        Ok(())
    }

    /// Opens an upload (or its thumbnail) for streaming.
    pub async fn open(&self, id: UploadId, variant: Variant) -> Result<Opened, FileError> {
        let path = match variant {
            Variant::Content => object_path(id),
            Variant::Thumbnail => thumb_path(id),
        };
        let got = self.objects.get(&path).await?;
        let size = got.meta.size;
        let body = got.into_stream().map(|r| r.map_err(FileError::from)).boxed();
        Ok(Opened { size, body })
    }

    /// Removes an upload's objects; ones already gone are fine.
    pub async fn delete(&self, id: UploadId) -> Result<(), FileError> {
        for path in [object_path(id), thumb_path(id)] {
            match self.objects.delete(&path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Whether an upload's object exists (tests, the sweeper's log).
    pub async fn exists(&self, id: UploadId) -> Result<bool, FileError> {
        match self.objects.head(&object_path(id)).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    fn mac(&self, id: UploadId, variant: Variant, expires: i64) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(format!("{id}.{}.{expires}", variant.as_str()).as_bytes());
        mac
    }

    /// The signature of a download link.
    pub fn sign(&self, id: UploadId, variant: Variant, expires: i64) -> String {
        hex::encode(self.mac(id, variant, expires).finalize().into_bytes())
    }

    /// Checks a link's signature (in constant time) and that it has not expired.
    pub fn verify(&self, id: UploadId, variant: Variant, expires: i64, sig: &str, now: DateTime<Utc>) -> bool {
        let Ok(sig) = hex::decode(sig) else { return false };
        expires >= now.timestamp() && self.mac(id, variant, expires).verify_slice(&sig).is_ok()
    }

    /// How an upload appears in a message: the seed's fields, its id, and our
    /// URLs (stable ones: they need a token or a signature).
    pub fn attachment(&self, u: &omnibiz_domain::Upload) -> omnibiz_domain::Attachment {
        omnibiz_domain::Attachment {
            id: Some(u.id.to_hex()),
            url: self.url(u.id, Variant::Content),
            name: u.name.clone(),
            mime_type: u.mime_type.clone(),
            size: u.size.unwrap_or(0),
            thumbnail_url: u.has_thumbnail.then(|| self.url(u.id, Variant::Thumbnail)),
            audio: u.audio.clone(),
        }
    }

    /// The stable URL put into a message (needs a token or a signature).
    pub fn url(&self, id: UploadId, variant: Variant) -> String {
        let base = self.config.public_url.as_deref().unwrap_or("").trim_end_matches('/');
        format!("{base}/api/messages/attachments/{id}/{}", variant.as_str())
    }

    /// A signed link valid for `link_ttl` from `now`, and when it expires.
    pub fn signed_url(&self, id: UploadId, variant: Variant, now: DateTime<Utc>) -> (String, DateTime<Utc>) {
        let ttl = chrono::Duration::from_std(self.config.link_ttl).unwrap_or(chrono::Duration::minutes(5));
        let expires = now + ttl;
        let ts = expires.timestamp();
        (format!("{}?expires={ts}&sig={}", self.url(id, variant), self.sign(id, variant, ts)), expires)
    }
}

/// The media type of a file from its first bytes, if recognised.
pub fn sniff(head: &[u8]) -> Option<&'static str> {
    sniff_all(head).first().copied()
}

/// What a file's first bytes may be, most specific first: an audio
/// container as the audio type it is stored under (`audio/webm` rather
/// than `video/webm`; a video inside is refused when it is decoded),
/// then the general guess.
fn sniff_all(head: &[u8]) -> Vec<&'static str> {
    let mut out: Vec<&'static str> = audio::Container::sniff(head).map(audio::Container::mime).into_iter().collect();
    out.extend(infer::get(head).map(|t| t.mime_type()).filter(|m| !out.contains(m)));
    out
}

/// `Content-Disposition` for a download: `inline` only for raster images;
/// the name as an ASCII fallback (quotes, backslashes and anything outside
/// printable ASCII replaced) and as RFC 8187 UTF-8.
pub fn content_disposition(name: &str, mime: &str) -> String {
    let kind = if is_raster_image(mime) { "inline" } else { "attachment" };
    let ascii: String =
        name.chars().map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' { c } else { '_' }).collect();
    let mut encoded = String::new();
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
            encoded.push(b as char);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    format!("{kind}; filename=\"{ascii}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_lose_paths_and_control_characters() {
        assert_eq!(Files::clean_name("../../etc/passwd"), "passwd");
        assert_eq!(Files::clean_name("C:\\Users\\x\\photo.png"), "photo.png");
        assert_eq!(Files::clean_name("a\r\nb.png"), "ab.png");
        assert_eq!(Files::clean_name(".."), "file");
        assert_eq!(Files::clean_name(""), "file");
        assert_eq!(Files::clean_name(&"x".repeat(400)).chars().count(), 255);
    }

    #[test]
    fn disposition_cannot_break_the_header() {
        let d = content_disposition("evil\"; filename=x.html\r\nSet-Cookie: a=b.pdf", "application/pdf");
        assert!(d.starts_with("attachment; filename=\"evil_; filename=x.html__Set-Cookie: a=b.pdf\""), "{d}");
        assert!(!d.contains('\r') && !d.contains('\n'));
        assert!(content_disposition("ünï.png", "image/png").contains("filename*=UTF-8''%C3%BCn%C3%AF.png"));
        assert!(content_disposition("a.svg", "image/svg+xml").starts_with("attachment;"));
    }

    #[test]
    fn types_come_from_the_bytes() {
        assert_eq!(sniff(b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR"), Some("image/png"));
        assert_eq!(sniff(b"%PDF-1.7\n"), Some("application/pdf"));
        // Recognised, and not among the accepted types by default.
        assert_eq!(sniff(b"<html><script>alert(1)</script>"), Some("text/html"));
        assert!(!DEFAULT_TYPES.split(',').any(|t| t == "text/html"));
        assert_eq!(sniff(b"just some words"), None);
    }

    #[test]
    fn links_expire_and_bind_their_upload_and_variant() {
        let dir = tempfile::tempdir().expect("dir");
        let files = Files::local(dir.path(), b"k", FilesConfig::default()).expect("files");
        let id = UploadId::new();
        let now = Utc::now();
        let exp = now.timestamp() + 60;
        let sig = files.sign(id, Variant::Content, exp);
        assert!(files.verify(id, Variant::Content, exp, &sig, now));
        assert!(!files.verify(id, Variant::Thumbnail, exp, &sig, now));
        assert!(!files.verify(UploadId::new(), Variant::Content, exp, &sig, now));
        assert!(!files.verify(id, Variant::Content, exp + 1, &sig, now));
        assert!(!files.verify(id, Variant::Content, exp, &sig, now + chrono::Duration::seconds(61)));
        assert!(!files.verify(id, Variant::Content, exp, "zz", now));
    }
}
