//! The web console: the owner inbox and the customer chat, shipped inside
//! the binary (no Node.js needed to build or run it).
//!
//! The files under `api/console/` are served as written — plain HTML, CSS
//! and one JavaScript module, no build step — plus the official
//! `socket.io-client` browser bundle, copied from the npm package pinned by
//! `api/console/package-lock.json` (`scripts/console-vendor.sh` refreshes it;
//! the test script fails when the copy differs from the lockfile's).
//!
//! `/` is the page; its assets live under `/console/`. Every response
//! carries a strict Content-Security-Policy (scripts and styles from this
//! origin only, connections to this origin and the configured Socket.IO
//! URL), `nosniff`, `no-referrer`, and an `ETag` for revalidation. The
//! console holds no secrets: it signs in with a token pasted by the user, or
//! one in a demo link's `#token=` fragment (never sent to a server).

use std::hash::{Hash as _, Hasher as _};
use std::sync::Arc;

use axum::Router;
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

const INDEX: &str = include_str!("../console/index.html");
const APP_JS: &str = include_str!("../console/app.js");
const APP_CSS: &str = include_str!("../console/app.css");
/// The page's ES modules (`/console/js/<name>.js`), imported by `app.js`.
const MODULES: &[(&str, &str)] = &[
    ("chat", include_str!("../console/js/chat.js")),
    ("composer", include_str!("../console/js/composer.js")),
    ("connection", include_str!("../console/js/connection.js")),
    ("dom", include_str!("../console/js/dom.js")),
    ("inbox", include_str!("../console/js/inbox.js")),
    ("notify", include_str!("../console/js/notify.js")),
    ("rest", include_str!("../console/js/rest.js")),
    ("session", include_str!("../console/js/session.js")),
    ("state", include_str!("../console/js/state.js")),
    ("voice", include_str!("../console/js/voice.js")),
];
/// The service worker (Web Push notifications), at `/console/sw.js` with scope `/console/`.
const SERVICE_WORKER_JS: &str = include_str!("../console/sw.js");
const SOCKET_IO_JS: &str = include_str!("../console/vendor/socket.io.esm.min.js");

/// How the console is served.
#[derive(Debug, Clone, Default)]
pub struct ConsoleOptions {
    /// Where the page's Socket.IO client connects; `None` = the page's origin.
    pub socket_url: Option<String>,
}

struct Asset {
    body: Vec<u8>,
    content_type: &'static str,
    etag: HeaderValue,
}

impl Asset {
    fn new(body: impl Into<Vec<u8>>, content_type: &'static str) -> Self {
        let body = body.into();
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        let etag = HeaderValue::from_str(&format!("\"{:016x}\"", h.finish())).expect("hex is a valid header value");
        Self { body, content_type, etag }
    }
}

struct Assets {
    index: Asset,
    app_js: Asset,
    app_css: Asset,
    socket_io: Asset,
    service_worker: Asset,
    modules: Vec<(String, Asset)>,
    csp: HeaderValue,
}

/// Escapes a value for an HTML attribute.
fn attr(s: &str) -> String {
    s.replace('&', "&amp;").replace('"', "&quot;").replace('<', "&lt;").replace('>', "&gt;")
}

/// The socket URL's origin for `connect-src` (http and its websocket twin).
fn connect_sources(socket_url: Option<&str>) -> String {
    let mut src = String::from("'self'");
    if let Some(url) = socket_url {
        let rest = url.split_once("://").map_or(url, |(_, r)| r);
        let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (http, ws) = if url.starts_with("https://") { ("https", "wss") } else { ("http", "ws") };
        src += &format!(" {http}://{host} {ws}://{host}");
    }
    src
}

impl Assets {
    fn new(opts: &ConsoleOptions) -> Self {
        let socket_url = opts.socket_url.as_deref().unwrap_or_default();
        let index = INDEX.replace("{{SOCKET_URL}}", &attr(socket_url));
        let csp = format!(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self'; worker-src 'self'; \
             connect-src {}; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            connect_sources(opts.socket_url.as_deref())
        );
        Self {
            index: Asset::new(index, "text/html; charset=utf-8"),
            app_js: Asset::new(APP_JS, "text/javascript; charset=utf-8"),
            app_css: Asset::new(APP_CSS, "text/css; charset=utf-8"),
            socket_io: Asset::new(SOCKET_IO_JS, "text/javascript; charset=utf-8"),
            service_worker: Asset::new(SERVICE_WORKER_JS, "text/javascript; charset=utf-8"),
            modules: MODULES
                .iter()
                .map(|(name, js)| (format!("/console/js/{name}.js"), Asset::new(*js, "text/javascript; charset=utf-8")))
                .collect(),
            csp: HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'self'")),
        }
    }

    fn serve(&self, uri: &Uri, req: &HeaderMap) -> Response {
        let asset = match uri.path() {
            "/" | "/index.html" => &self.index,
            "/console/app.js" => &self.app_js,
            "/console/app.css" => &self.app_css,
            "/console/vendor/socket.io.esm.min.js" => &self.socket_io,
            "/console/sw.js" => &self.service_worker,
            path => match self.modules.iter().find(|(p, _)| p == path) {
                Some((_, asset)) => asset,
                None => return StatusCode::NOT_FOUND.into_response(),
            },
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(header::ETAG, asset.etag.clone());
        headers.insert(header::CONTENT_SECURITY_POLICY, self.csp.clone());
        headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
        headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        if req.get(header::IF_NONE_MATCH).is_some_and(|v| v == asset.etag) {
            return (StatusCode::NOT_MODIFIED, headers).into_response();
        }
        (headers, asset.body.clone()).into_response()
    }
}

/// The console's routes: `/` and `/console/*`.
pub fn router(opts: &ConsoleOptions) -> Router {
    let assets = Arc::new(Assets::new(opts));
    let handler = move |uri: Uri, headers: HeaderMap| {
        let assets = Arc::clone(&assets);
        async move { assets.serve(&uri, &headers) }
    };
    Router::new()
        .route("/", get(handler.clone()))
        .route("/index.html", get(handler.clone()))
        .route("/console/{*file}", get(handler))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `import … from "./…"` of the page resolves to an asset served
    /// here: a module added to `api/console/js/` must be listed in `MODULES`.
    #[test]
    fn every_module_the_page_imports_is_served() {
        let assets = Assets::new(&ConsoleOptions::default());
        let sources = std::iter::once(("/console/app.js".to_owned(), APP_JS))
            .chain(MODULES.iter().map(|(n, js)| (format!("/console/js/{n}.js"), *js)));
        let mut imports = 0;
        for (path, js) in sources {
            let dir = path.rsplit_once('/').map_or("", |(d, _)| d);
            for spec in
                js.lines().filter_map(|l| l.strip_prefix("import ")?.split(" from \"").nth(1)?.strip_suffix("\";"))
            {
                let mut parts: Vec<&str> = dir.split('/').collect();
                for seg in spec.split('/') {
                    match seg {
                        "." => {}
                        ".." => {
                            parts.pop();
                        }
                        s => parts.push(s),
                    }
                }
                let target = parts.join("/");
                let uri: Uri = target.parse().expect("uri");
                let r = assets.serve(&uri, &HeaderMap::new());
                assert_eq!(r.status(), StatusCode::OK, "{path} imports {spec} ({target}), which is not served");
                imports += 1;
            }
        }
        assert!(imports >= 20, "the page's modules import one another: {imports}");
    }

    #[test]
    fn socket_origin_is_allowed_for_http_and_websocket() {
        assert_eq!(connect_sources(None), "'self'");
        assert_eq!(
            connect_sources(Some("https://chat.example.com/x?y")),
            "'self' https://chat.example.com wss://chat.example.com"
        );
        assert_eq!(connect_sources(Some("http://10.0.0.5:8080")), "'self' http://10.0.0.5:8080 ws://10.0.0.5:8080");
    }

    #[test]
    fn the_socket_url_cannot_break_out_of_its_attribute() {
        let a = Assets::new(&ConsoleOptions { socket_url: Some("http://x/\"><script>".into()) });
        let html = String::from_utf8(a.index.body).expect("utf-8");
        assert!(html.contains("http://x/&quot;&gt;&lt;script&gt;"), "{html}");
        assert!(!html.contains("{{SOCKET_URL}}"));
    }
}
