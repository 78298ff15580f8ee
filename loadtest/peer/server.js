// The reference peer: the seed's real-time layer as a competent Node developer
// writes it — socket.io 4.8.1 with the official Redis adapter, JWT checked at
// connect with the shared secret, the same events as OmniBiz, and no database
// (so it does strictly less work per message than OmniBiz, which stores each one).
//
//   PORT=6001 REDIS_URL=redis://127.0.0.1:6390 JWT_SECRET=… node server.js
import { createServer } from "node:http";
import { randomUUID } from "node:crypto";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import jwt from "jsonwebtoken";

const { PORT = "6001", REDIS_URL = "redis://127.0.0.1:6379", JWT_SECRET } = process.env;
if (!JWT_SECRET) {
  console.error("JWT_SECRET is required");
  process.exit(2);
}

const pub = createClient({ url: REDIS_URL });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const httpServer = createServer();
const io = new Server(httpServer, {
  cors: { origin: "*" },
  adapter: createAdapter(pub, sub),
});

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

httpServer.listen(Number(PORT), "127.0.0.1", () => {
  console.log(`node-peer listening on http://127.0.0.1:${httpServer.address().port}`);
});
