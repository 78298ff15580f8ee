//! Link cards, the pure part: finding a message's first link and reading a
//! page's OpenGraph tags (else its `<title>` and description). Fetching and
//! storing are `messaging::previews`'.

use std::sync::Arc;
use std::time::Duration;

/// Largest page read (the head is what matters; the rest is not read).
pub const MAX_HTML: usize = 512 * 1024;
/// Largest preview image kept.
pub const MAX_IMAGE: usize = 2 * 1024 * 1024;
/// Each request's whole time.
pub const TIMEOUT: Duration = Duration::from_secs(5);
/// Redirects followed, each checked by the guard.
pub const MAX_REDIRECTS: usize = 3;
/// Longest title and description kept.
const MAX_TEXT: usize = 300;

/// Previews by URL (text only: an image belongs to one message's files).
pub type PreviewCache = moka::sync::Cache<String, Arc<Option<Card>>>;

pub fn cache() -> PreviewCache {
    moka::sync::Cache::builder().max_capacity(10_000).time_to_live(Duration::from_secs(3600)).build()
}

/// What a page says about itself.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Card {
    pub title: Option<String>,
    pub description: Option<String>,
    pub site_name: Option<String>,
    pub image: Option<String>,
}

/// The first http(s) link of a text, as the reader wrote it.
pub fn first_link(text: &str) -> Option<url::Url> {
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
pub fn parse_card(html: &str) -> Card {
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
