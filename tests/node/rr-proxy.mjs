// A load balancer with no affinity at all: every HTTP request, and every
// websocket upgrade, goes to the next backend in turn (a backend that
// refuses connections is skipped, as a health-checked balancer would).
//
//   BACKENDS=http://127.0.0.1:5001,http://127.0.0.1:5002 node rr-proxy.mjs
//
// Prints {"port": N} once listening. GET /__stats answers how many
// requests each backend got.
import http from "node:http";
import net from "node:net";

const backends = (process.env.BACKENDS || "").split(",").filter(Boolean).map((u) => new URL(u));
if (backends.length === 0) {
  console.error("BACKENDS is required");
  process.exit(2);
}
const served = backends.map(() => 0);
let next = 0;
const pick = () => {
  const i = next++ % backends.length;
  return [i, backends[i]];
};

function forward(req, res, body, tries) {
  const [i, b] = pick();
  const up = http.request(
    { host: b.hostname, port: b.port, method: req.method, path: req.url, headers: req.headers, agent: false },
    (r) => {
      served[i]++;
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    },
  );
  up.on("error", (e) => {
    if (e.code === "ECONNREFUSED" && tries > 1) return forward(req, res, body, tries - 1);
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  up.end(body);
}

const server = http.createServer((req, res) => {
  if (req.url === "/__stats") {
    res.writeHead(200, { "content-type": "application/json" });
    return res.end(JSON.stringify(served));
  }
  const chunks = [];
  req.on("data", (c) => chunks.push(c));
  req.on("end", () => forward(req, res, Buffer.concat(chunks), backends.length));
});

server.on("upgrade", (req, socket, head) => {
  const attempt = (tries) => {
    const [i, b] = pick();
    let open = false;
    const up = net.connect(Number(b.port), b.hostname, () => {
      open = true;
      served[i]++;
      let raw = `${req.method} ${req.url} HTTP/1.1\r\n`;
      for (let k = 0; k < req.rawHeaders.length; k += 2) raw += `${req.rawHeaders[k]}: ${req.rawHeaders[k + 1]}\r\n`;
      up.write(raw + "\r\n");
      if (head && head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    up.on("error", () => {
      if (!open && tries > 1) return attempt(tries - 1);
      socket.destroy();
    });
    socket.on("error", () => up.destroy());
    socket.on("close", () => up.destroy());
  };
  attempt(backends.length);
});

server.listen(0, "127.0.0.1", () => console.log(JSON.stringify({ port: server.address().port })));
