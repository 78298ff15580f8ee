// The reference peer: the seed's real-time layer as a competent Node developer
// writes it — socket.io 4.8.1 with the official Redis adapter, JWT checked at
// connect with the shared secret, the same events as OmniBiz, and no database
// (so it does strictly less work per message than OmniBiz, which stores each one).
//
//   PORT=6001 REDIS_URL=redis://127.0.0.1:6390 JWT_SECRET=… node server.js
//
// PEER_ENGINE=uws runs the same application on uWebSockets.js through
// `io.attachApp` (the tuned peer: the fastest engine a Node team would pick;
// @trufflesuite/uws-js-unofficial is the build that loads on Node 20).
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import jwt from "jsonwebtoken";

const { PORT = "6001", REDIS_URL = "redis://127.0.0.1:6379", JWT_SECRET, PEER_ENGINE = "node" } = process.env;
if (!JWT_SECRET) {
  console.error("JWT_SECRET is required");
  process.exit(2);
}

const pub = createClient({ url: REDIS_URL });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const options = { cors: { origin: "*" }, adapter: createAdapter(pub, sub) };
let io;
let listen;
if (PEER_ENGINE === "uws") {
  const { App } = (await import("@trufflesuite/uws-js-unofficial")).default;
  const app = App();
  io = new Server(options);
  io.attachApp(app);
  listen = (port, done) =>
    app.listen("127.0.0.1", port, (token) => {
      if (!token) {
        console.error(`port ${port} is in use`);
        process.exit(1);
      }
      done(port);
    });
} else if (PEER_ENGINE === "node") {
  const httpServer = createServer();
  io = new Server(httpServer, options);
  listen = (port, done) => httpServer.listen(port, "127.0.0.1", () => done(httpServer.address().port));
} else {
  console.error(`PEER_ENGINE must be node or uws, not ${PEER_ENGINE}`);
  process.exit(2);
}

io.use((socket, next) => {
  const token = socket.handshake.auth?.token ?? socket.handshake.query?.token;
  try {
    const claims = jwt.verify(token, JWT_SECRET);
    const isCustomer = Boolean(claims.customerId) || claims.type === "customer";
    socket.data.userId = claims.customerId ?? claims.id ?? claims.userId ?? claims.sub;
    socket.data.role = isCustomer ? "customer" : "business_owner";
    next();
  } catch {
    next(new Error("invalid authentication token"));
  }
});

const conversationId = (arg) => (typeof arg === "string" ? arg : arg?.conversationId);

io.on("connection", (socket) => {
  const { userId, role } = socket.data;
  socket.join(`${role === "customer" ? "customer" : "user"}:${userId}`);

  socket.on("join_conversation", (arg, ack) => {
    const id = conversationId(arg);
    if (!id) return ack?.({ ok: false, error: "conversationId required", code: "VALIDATION_ERROR" });
    socket.join(`conv:${id}`);
    ack?.({ ok: true, conversationId: id });
  });

  socket.on("leave_conversation", (arg, ack) => {
    socket.leave(`conv:${conversationId(arg)}`);
    ack?.({ ok: true });
  });

  socket.on("send_message", (data, ack) => {
    const id = data?.conversationId;
    const content = typeof data?.message === "string" ? data.message : data?.content;
    if (!id || typeof content !== "string" || !content.trim()) {
      const err = { error: "invalid message", code: "VALIDATION_ERROR", clientMessageId: data?.clientMessageId };
      socket.emit("message_error", err);
      return ack?.({ ok: false, ...err });
    }
    const message = {
      id: randomUUID(),
      conversationId: id,
      senderId: userId,
      senderRole: role,
      content: content.trim(),
      timestamp: new Date().toISOString(),
      status: "sent",
      clientMessageId: data.clientMessageId,
    };
    socket.to(`conv:${id}`).emit("message_received", message);
    socket.emit("message_sent", message);
    ack?.({ ok: true, message });
  });

  socket.on("typing_start", (data) => {
    const id = conversationId(data);
    socket.to(`conv:${id}`).emit("user_typing", { conversationId: id, userId });
  });
  socket.on("typing_stop", (data) => {
    const id = conversationId(data);
    socket.to(`conv:${id}`).emit("user_stopped_typing", { conversationId: id, userId });
  });
});

listen(Number(PORT), (port) => {
  console.log(`node-peer (${PEER_ENGINE}) listening on http://127.0.0.1:${port}`);
});
