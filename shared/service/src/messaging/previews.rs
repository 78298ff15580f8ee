//! Link previews: a message's first http(s) link becomes a card (title,
//! description, site, image) after the message is stored — the send never
//! waits for it — fetched through the webhooks' address guard (public
//! addresses only, each redirect checked again, at most three), within size
//! and time limits, cached per URL for an hour. The image is stored with the
//! message's files, so readers' browsers never contact the third party.
//! The card arrives as a `message_updated`.

use std::sync::Arc;

use futures_util::StreamExt as _;
use omnibiz_domain::views::MessageView;
use omnibiz_domain::{LinkPreview, Message, UploadId};

use super::Messaging;
use crate::bus::{EventKind, Topic};
use crate::linkcards::{MAX_HTML, MAX_IMAGE, MAX_REDIRECTS, TIMEOUT, first_link, parse_card};

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
        let body = futures_util::stream::once(async move { Ok::<_, std::io::Error>(bytes::Bytes::from(bytes)) });
        let m = message;
        let upload = self
            .store_file(files, m.conversation_id, &m.sender_id, m.sender_side, "preview", Box::pin(body))
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        if !upload.mime_type.starts_with("image/") {
            // Not an image after all (a PDF is an accepted upload type): the sweeper removes it.
            anyhow::bail!("the preview image is {}", upload.mime_type);
        }
        self.store.confirm_uploads(&[upload.id], message.id).await?;
        Ok(upload.id)
    }
}
