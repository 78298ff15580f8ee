//! Link previews: a message's first http(s) link becomes a card (title,
//! description, site, image) after the message is stored — the send never
//! waits for it — fetched through the webhooks' address guard (public
//! addresses only, each redirect checked again, at most three), within size
//! and time limits, cached per URL for an hour. The image is stored with the
//! message's files, so readers' browsers never contact the third party.
//! The card arrives as a `message_updated`.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt as _;
use omnibiz_domain::views::MessageView;
use omnibiz_domain::{LinkPreview, Message, Upload, UploadId};

use super::Messaging;
use crate::bus::{EventKind, Topic};

/// Largest page read (the head is what matters; the rest is not read).
const MAX_HTML: usize = 512 * 1024;
/// Largest preview image kept.
const MAX_IMAGE: usize = 2 * 1024 * 1024;
/// Each request's whole time.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed, each checked by the guard.
const MAX_REDIRECTS: usize = 3;
/// Longest title and description kept.
const MAX_TEXT: usize = 300;

/// Previews by URL (text only: an image belongs to one message's files).
pub(crate) type PreviewCache = moka::sync::Cache<String, Arc<Option<Card>>>;

pub(crate) fn cache() -> PreviewCache {
    moka::sync::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(3600)).build()
}

/// What a page says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Card {
    pub title: Option<String>,
    pub description: Option<String>,
    pub site_name: Option<String>,
    pub image: Option<String>,
}

/// The first http(s) link of a text, as the reader wrote it.
pub(crate) fn first_link(text: &str) -> Option<url::Url> {
    text.split(|c: char| c.is_whitespace() || matches!(c, '<' | '>' | '"' | '\''))
        .map(|w| w.trim_start_matches(['(', '[']))
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .map(|w| w.trim_end_matches(['.', ',', ')', ']', '!', '?', ';', ':']))
        .find_map(|w| url::Url::parse(w).ok().filter(|u| u.host().is_some() && w.len() <= 2048))
}

fn clean(s: &str) -> Option<String> {
    let s: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let s: String = s.chars().take(MAX_TEXT).collect();
    (!s.is_empty()).then_some(s)
}

/// OpenGraph (`og:*`), Twitter card and plain `<title>` / description tags of a page.
pub(crate) fn parse_card(html: &str) -> Card {
    let Ok(dom) = tl::parse(html, tl::ParserOptions::default()) else { return Card::default() };
    let parser = dom.parser();
    let mut card = Card::default();
    let mut plain_description = None;
    if let Some(metas) = dom.query_selector("meta") {
        for tag in metas.filter_map(|h| h.get(parser)).filter_map(|n| n.as_tag()) {
            let attr = |k: &str| tag.attributes().get(k).flatten().map(|b| b.as_utf8_str().into_owned());
            let key = attr("property").or_else(|| attr("name")).unwrap_or_default().to_ascii_lowercase();
            let Some(content) = attr("content") else { continue };
            let content = decode_entities(&content);
            let slot = match key.as_str() {
                "og:title" | "twitter:title" => &mut card.title,
                "og:description" | "twitter:description" => &mut card.description,
                "og:site_name" => &mut card.site_name,
                "og:image" | "og:image:url" | "twitter:image" => &mut card.image,
                "description" => &mut plain_description,
                _ => continue,
            };
            if slot.is_none() {
                *slot = clean(&content);
            }
        }
    }
    if card.title.is_none()
        && let Some(mut titles) = dom.query_selector("title")
        && let Some(t) = titles.next().and_then(|h| h.get(parser))
    {
        card.title = clean(&decode_entities(&t.inner_text(parser)));
    }
    card.description = card.description.or(plain_description);
    card
}

/// The few entities titles carry.
fn decode_entities(s: &str) -> String {
    s.replace("&amp;", "&").replace("&quot;", "\"").replace("&#39;", "'").replace("&lt;", "<").replace("&gt;", ">")
}

impl Messaging {
    /// Starts a message's link preview in the background, when it has a link.
    pub(super) fn spawn_link_preview(&self, message: &Message) {
        if !self.link_previews {
            return;
        }
        let Some(url) = first_link(&message.content) else { return };
        let (me, message) = (self.clone(), message.clone());
        tokio::spawn(async move {
            match me.link_preview(&message, url).await {
                Ok(true) => metrics::counter!("link_previews_total", "outcome" => "made").increment(1),
                Ok(false) => metrics::counter!("link_previews_total", "outcome" => "nothing").increment(1),
                Err(e) => {
                    metrics::counter!("link_previews_total", "outcome" => "failed").increment(1);
                    tracing::debug!(error = %format!("{e:#}"), message = %message.id, "no link preview");
                }
            }
        });
    }

    async fn link_preview(&self, message: &Message, url: url::Url) -> anyhow::Result<bool> {
        let key = url.to_string();
        let card = match self.previews.get(&key) {
            Some(hit) => hit,
            None => {
                let fetched = self.fetch(&url, MAX_HTML, |t| t.starts_with("text/html")).await.ok();
                let card = fetched.map(|(body, _)| parse_card(&String::from_utf8_lossy(&body)));
                let card = Arc::new(card.filter(|c| c.title.is_some() || c.description.is_some()));
                self.previews.insert(key.clone(), Arc::clone(&card));
                card
            }
        };
        let Some(card) = card.as_ref() else { return Ok(false) };
        let image_id = match (&card.image, &self.files) {
            (Some(img), Some(_)) => match url.join(img) {
                Ok(img) => self.store_preview_image(message, &img).await.ok(),
                Err(_) => None,
            },
            _ => None,
        };
        let preview = LinkPreview {
            url: key,
            title: card.title.clone(),
            description: card.description.clone(),
            site_name: card.site_name.clone(),
            image_id: image_id.map(|i| i.to_hex()),
        };
        let Some(updated) = self.store.set_link_preview(message.id, &preview).await? else { return Ok(false) };
        let view = MessageView::from(&updated);
        let payload = serde_json::to_value(&view).unwrap_or_default();
        let conv = updated.conversation_id;
        self.publish(Topic::Conversation(conv), EventKind::MessageUpdated, Some(conv), payload, None).await;
        Ok(true)
    }

    /// GETs `url` through the address guard, following redirects (each one
    /// checked), reading at most `max` bytes of a body whose type `ok` accepts.
    async fn fetch(&self, url: &url::Url, max: usize, ok: impl Fn(&str) -> bool) -> anyhow::Result<(Vec<u8>, String)> {
        let client = self.hook_guard.client(TIMEOUT);
        let mut at = url.clone();
        for _ in 0..=MAX_REDIRECTS {
            let checked = self.hook_guard.check(at.as_str(), true).await.map_err(anyhow::Error::msg)?;
            let res = client.get(checked.clone()).header("accept", "text/html,image/*;q=0.8").send().await?;
            if res.status().is_redirection() {
                let to = res.headers().get("location").and_then(|l| l.to_str().ok()).unwrap_or_default();
                at = checked.join(to)?;
                continue;
            }
            anyhow::ensure!(res.status().is_success(), "{} answered {}", checked, res.status());
            let kind =
                res.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
            anyhow::ensure!(ok(&kind), "{checked} is {kind}");
            let mut body = Vec::new();
            let mut stream = res.bytes_stream();
            while let Some(chunk) = stream.next().await {
                let chunk = chunk?;
                let room = max.saturating_sub(body.len());
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= max {
                    break;
                }
            }
            return Ok((body, kind));
        }
        anyhow::bail!("more than {MAX_REDIRECTS} redirects")
    }

    /// Fetches a preview image and stores it as one of the message's files
    /// (its type sniffed from the bytes, a thumbnail made, as for uploads).
    async fn store_preview_image(&self, message: &Message, img: &url::Url) -> anyhow::Result<UploadId> {
        let files = self.files.as_ref().ok_or_else(|| anyhow::anyhow!("file storage is not configured"))?;
        let (bytes, _) = self.fetch(img, MAX_IMAGE, |t| t.starts_with("image/")).await?;
        let upload = Upload {
            id: UploadId::new(),
            conversation_id: message.conversation_id,
            uploader_id: message.sender_id.clone(),
            uploader_side: message.sender_side,
            name: "preview".into(),
            mime_type: "application/octet-stream".into(),
            size: None,
            has_thumbnail: false,
            created_at: Utc::now(),
            claim: None,
            message_id: None,
            confirmed: false,
        };
        self.store.insert_upload(&upload).await?;
        let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(bytes)) });
        let stored = match files.store(upload.id, Box::pin(body)).await {
            Ok(s) => s,
            Err(e) => {
                let _ = self.store.delete_upload(upload.id).await;
                return Err(anyhow::anyhow!("{e}"));
            }
        };
        anyhow::ensure!(stored.mime_type.starts_with("image/"), "the preview image is {}", stored.mime_type);
        self.store.finish_upload(upload.id, &stored.mime_type, stored.size, stored.has_thumbnail).await?;
        self.store.confirm_uploads(&[upload.id], message.id).await?;
        Ok(upload.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_link_is_found_in_text() {
        let u = |t| first_link(t).map(|u| u.to_string());
        assert_eq!(u("see https://shop.example/p/42, thanks!").as_deref(), Some("https://shop.example/p/42"));
        assert_eq!(u("(http://a.example/x) and https://b.example").as_deref(), Some("http://a.example/x"));
        assert_eq!(u("no link here, ftp://x.example nor javascript:alert(1)"), None);
    }

    #[test]
    fn cards_come_from_opengraph_else_title() {
        let og = r#"<html><head><title>Ignored</title>
            <meta property="og:title" content="Blue  Mug &amp; Saucer">
            <meta property="og:description" content="Hand-made, 350 ml">
            <meta property="og:site_name" content="Pottery Shop">
            <meta property="og:image" content="/img/mug.png"></head></html>"#;
        let c = parse_card(og);
        assert_eq!(c.title.as_deref(), Some("Blue Mug & Saucer"));
        assert_eq!(c.description.as_deref(), Some("Hand-made, 350 ml"));
        assert_eq!(c.site_name.as_deref(), Some("Pottery Shop"));
        assert_eq!(c.image.as_deref(), Some("/img/mug.png"));
        let plain = parse_card(r#"<title> Plain page </title><meta name="description" content="About us">"#);
        assert_eq!((plain.title.as_deref(), plain.description.as_deref()), (Some("Plain page"), Some("About us")));
        assert_eq!(parse_card("not html at all").title, None);
    }
}
