// OmniBiz web console: the owner inbox and the customer chat as ES modules (no bundler;
// the binary embeds them): `js/state.js`, `js/rest.js` (REST client),
// `js/connection.js` (socket and REST fallback), `js/inbox.js`, `js/chat.js`,
// `js/composer.js`, `js/session.js` (sign in), `js/notify.js` (notifications and
// their preferences; `sw.js` is the service worker), `js/dom.js` (helpers).
//
// No framework: the two pages are a few lists and one message log, so the
// DOM is updated directly: about 40 KiB of our own HTML, CSS and JavaScript
// (uncompressed) plus the official socket.io-client bundle (40 KiB).
//
// Delivery rules it follows (README, "Delivery contract"): messages are
// kept per conversation by `seq`; a rejoin after a reconnect passes the
// highest `seq` seen as `lastSeq`, so the server replays what was missed;
// every send carries a `clientMessageId`, so a send retried over REST after
// a socket timeout is stored once. While the socket is down the console
// sends over REST and polls, and switches back when the socket returns.

import { boot } from "./js/session.js";

boot();
