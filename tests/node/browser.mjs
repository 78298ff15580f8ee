// A browser front end on its own origin, as the seed's React app is: headless
// Chromium (Debian's package) driven by playwright-core loads a page from
// http://127.0.0.1:PAGE_PORT, which uses the browser build of the official
// socket.io-client with its default transports (polling, then the upgrade to
// websocket) and calls the REST API with an Authorization header.
//
//   API=http://127.0.0.1:5000 SOCKET=http://127.0.0.1:5000 PAGE_PORT=… \
//   OWNER_TOKEN=… CUSTOMER_TOKEN=… CONV=… CREDENTIALS=true|false node browser.mjs
//
// Prints one JSON object: what worked and what the browser refused.
import http from "node:http";
import { readFileSync } from "node:fs";
import { chromium } from "playwright-core";

const env = process.env;
for (const k of ["API", "SOCKET", "PAGE_PORT", "OWNER_TOKEN", "CUSTOMER_TOKEN", "CONV"]) {
  if (!env[k]) {
    console.error(`missing ${k}`);
    process.exit(2);
  }
}
// The browser build the socket.io-client package ships (not in its exports map).
const clientJs = readFileSync(new URL("./node_modules/socket.io-client/dist/socket.io.min.js", import.meta.url));
const page = `<!doctype html><html><head><meta charset="utf-8"><title>front end</title>
<script src="/socket.io.min.js"></script></head><body>front end on its own origin</body></html>`;

const server = http.createServer((req, res) => {
  if (req.url === "/socket.io.min.js") {
    res.writeHead(200, { "content-type": "application/javascript" });
    res.end(clientJs);
  } else {
    res.writeHead(200, { "content-type": "text/html" });
    res.end(page);
  }
});
await new Promise((resolve) => server.listen(Number(env.PAGE_PORT), "127.0.0.1", resolve));

const browser = await chromium.launch({
  executablePath: env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
  ],
});
let result;
try {
  const tab = await browser.newPage();
  const consoleLines = [];
  tab.on("console", (m) => consoleLines.push(m.text()));
  await tab.goto(`http://127.0.0.1:${env.PAGE_PORT}/`);
  result = await tab.evaluate(
    async ({ api, socketUrl, ownerToken, customerToken, conv, credentials }) => {
      const out = { origin: location.origin };
      const withTimeout = (p, ms, what) =>
        Promise.race([p, new Promise((_, reject) => setTimeout(() => reject(new Error(`${what}: timed out`)), ms))]);
      // REST with a bearer token (a preflighted request).
      try {
        const r = await fetch(`${api}/api/messages/conversations`, {
          headers: { Authorization: `Bearer ${ownerToken}` },
          credentials: credentials ? "include" : "same-origin",
        });
        const body = await r.json();
        out.rest = { status: r.status, success: body.success, count: (body.conversations || []).length };
      } catch (e) {
        out.restError = String(e);
      }
      // Resolves with the socket and what its engine did: the transport it
      // opened with, and a promise of the upgrade.
      const connect = (token) =>
        withTimeout(
          new Promise((resolve, reject) => {
            const s = io(socketUrl, { auth: { token }, withCredentials: credentials, reconnection: false });
            const seen = {};
            s.io.once("open", () => {
              seen.first = s.io.engine.transport.name;
              seen.upgraded = new Promise((done) => s.io.engine.once("upgrade", (t) => done(t.name)));
            });
            s.once("connect", () => resolve([s, seen]));
            s.once("connect_error", (e) => {
              s.close();
              reject(e);
            });
          }),
          8000,
          "connect",
        );
      let owner;
      let customer;
      try {
        let seen;
        [owner, seen] = await connect(ownerToken);
        // The default transports: polling first, then the upgrade.
        out.firstTransport = seen.first;
        out.upgradedTo = await withTimeout(seen.upgraded, 8000, "upgrade");
        [customer] = await connect(customerToken);
        const joined = await withTimeout(
          new Promise((resolve) => owner.emit("join_conversation", { conversationId: conv }, resolve)),
          5000,
          "join ack",
        );
        out.joined = joined && joined.ok;
        const received = withTimeout(
          new Promise((resolve) => owner.once("message_received", resolve)),
          5000,
          "message_received",
        );
        const sent = await withTimeout(
          new Promise((resolve) =>
            customer.emit("send_message", { conversationId: conv, message: "hello from the browser" }, resolve),
          ),
          5000,
          "send ack",
        );
        out.sendAck = sent && sent.ok;
        const m = await received;
        out.received = m.content;
      } catch (e) {
        out.socketError = String(e && e.message ? e.message : e);
      } finally {
        if (owner) owner.close();
        if (customer) customer.close();
      }
      return out;
    },
    {
      api: env.API,
      socketUrl: env.SOCKET,
      ownerToken: env.OWNER_TOKEN,
      customerToken: env.CUSTOMER_TOKEN,
      conv: env.CONV,
      credentials: env.CREDENTIALS === "true",
    },
  );
  result.console = consoleLines.filter((l) => /CORS|blocked|Access-Control/i.test(l)).slice(0, 5);
} finally {
  await browser.close();
  server.close();
}
console.log(JSON.stringify(result));
