// The seed's own stack as a stored peer: what the Node service we replace does
// with every message — Express + socket.io 4.8.1 with the official Redis
// adapter + Mongoose with the seed's models (the same file the drop-in tests
// validate our documents with: tests/node/legacy/models.cjs) — written the
// way the seed document describes its controller and socket layer:
//
// - a socket connects with a JWT (checked with the shared secret);
// - `join_conversation` loads the conversation and checks the caller takes
//   part in it ("Conversation participant verification");
// - `send_message` and `POST /api/messages/send` load the conversation (the
//   same check), `Message.create` the message, update the conversation's
//   `lastMessage` and the recipient's `unreadCount`, then emit
//   `message_received` to the room, `message_sent` to the sender and
//   `new_message_notification` to the recipient's own room.
//
//   PORT=6101 REDIS_URL=… MONGODB_URI=… MONGODB_DATABASE=… JWT_SECRET=… node seed.js
//
// It runs on the same database OmniBiz uses in the benchmark (the seed's
// documents: `omnibiz seed` writes them in the Node service's format).
// The `clientMessageId` a load client sends is echoed in what is emitted
// (the seed's schema has no such field, so Mongoose does not store it): the
// load generator reads its send time from it.
import { createServer } from "node:http";
import { createRequire } from "node:module";
import express from "express";
import { Server } from "socket.io";
import { createAdapter } from "@socket.io/redis-adapter";
import { createClient } from "redis";
import jwt from "jsonwebtoken";

const require = createRequire(import.meta.url);
const { mongoose, Conversation, Message } = require("../../tests/node/legacy/models.cjs");

const {
  PORT = "6101",
  REDIS_URL = "redis://127.0.0.1:6379",
  MONGODB_URI,
  MONGODB_DATABASE,
  JWT_SECRET,
} = process.env;
if (!JWT_SECRET || !MONGODB_URI) {
  console.error("JWT_SECRET and MONGODB_URI are required");
  process.exit(2);
}

await mongoose.connect(MONGODB_URI, MONGODB_DATABASE ? { dbName: MONGODB_DATABASE } : {});
const pub = createClient({ url: REDIS_URL });
const sub = pub.duplicate();
await Promise.all([pub.connect(), sub.connect()]);

const app = express();
app.use(express.json({ limit: "1mb" }));
const httpServer = createServer(app);
const io = new Server(httpServer, { cors: { origin: "*" }, adapter: createAdapter(pub, sub) });

/// The caller of a token, as the seed's middleware tells users from customers.
function principal(token) {
  const claims = jwt.verify(token, JWT_SECRET);
  const isCustomer = Boolean(claims.customerId) || claims.type === "customer";
  return {
    id: String(claims.customerId ?? claims.id ?? claims.userId ?? claims.sub),
    role: isCustomer ? "customer" : "business_owner",
  };
}

const personalRoom = (role, id) => `${role === "customer" ? "customer" : "user"}:${id}`;

class Refused extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/// The conversation if `who` takes part in it.
async function participantConversation(id, who) {
  if (!mongoose.isValidObjectId(id)) throw new Refused(400, "VALIDATION_ERROR", "invalid conversationId");
  const conv = await Conversation.findById(id).lean();
  const mine =
    conv && String(who.role === "customer" ? conv.customerId : conv.businessOwnerId) === who.id;
  if (!mine) throw new Refused(404, "NOT_FOUND", "conversation not found");
  return conv;
}

/// The seed's sendMessage: store, update the conversation, then tell the room.
async function sendMessage(who, conversationId, content, clientMessageId, socket) {
  if (typeof content !== "string" || !content.trim() || content.length > 5000) {
    throw new Refused(400, "VALIDATION_ERROR", "content is required (at most 5000 characters)");
  }
  const conv = await participantConversation(conversationId, who);
  const owner = who.role !== "customer";
  const message = await Message.create({
    conversationId: conv._id,
    senderId: who.id,
    senderModel: owner ? "User" : "Customer",
    senderName: owner ? conv.businessOwnerName : conv.customerName,
    senderRole: who.role,
    content: content.trim(),
    attachments: [],
  });
  await Conversation.updateOne(
    { _id: conv._id },
    {
      $set: { lastMessage: { content: message.content, senderId: message.senderId, timestamp: message.createdAt } },
      $inc: { [owner ? "unreadCount.customer" : "unreadCount.businessOwner"]: 1 },
    },
  );
  const out = { ...message.toJSON(), id: String(message._id), timestamp: message.createdAt, clientMessageId };
  const room = `conversation:${conversationId}`;
  if (socket) {
    socket.to(room).emit("message_received", out);
    socket.emit("message_sent", out);
  } else {
    io.to(room).emit("message_received", out);
  }
  const recipient = owner ? personalRoom("customer", conv.customerId) : personalRoom("user", conv.businessOwnerId);
  io.to(recipient).emit("new_message_notification", {
    conversationId,
    from: out.senderName,
    preview: out.content.slice(0, 100),
  });
  return out;
}

app.post("/api/messages/send", async (req, res) => {
  try {
    const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    let who;
    try {
      who = principal(token);
    } catch {
      throw new Refused(401, "UNAUTHORIZED", "invalid authentication token");
    }
    const { conversationId, content, clientMessageId } = req.body ?? {};
    const message = await sendMessage(who, conversationId, content, clientMessageId, null);
    res.status(201).json({ success: true, message });
  } catch (e) {
    const status = e instanceof Refused ? e.status : 500;
    res.status(status).json({ success: false, message: e.message, code: e.code ?? "INTERNAL" });
  }
});

io.use((socket, next) => {
  try {
    socket.data.who = principal(socket.handshake.auth?.token ?? socket.handshake.query?.token);
    next();
  } catch {
    next(new Error("invalid authentication token"));
  }
});

const conversationIdOf = (arg) => (typeof arg === "string" ? arg : arg?.conversationId);
const refusal = (e) => ({ ok: false, error: e.message, code: e instanceof Refused ? e.code : "INTERNAL" });

io.on("connection", (socket) => {
  const { who } = socket.data;
  socket.join(personalRoom(who.role, who.id));

  socket.on("join_conversation", async (arg, ack) => {
    try {
      const id = conversationIdOf(arg);
      await participantConversation(id, who);
      socket.join(`conversation:${id}`);
      ack?.({ ok: true, conversationId: id });
    } catch (e) {
      ack?.(refusal(e));
    }
  });

  socket.on("leave_conversation", (arg, ack) => {
    socket.leave(`conversation:${conversationIdOf(arg)}`);
    ack?.({ ok: true });
  });

  socket.on("send_message", async (data, ack) => {
    const content = typeof data?.message === "string" ? data.message : data?.content;
    try {
      const message = await sendMessage(who, data?.conversationId, content, data?.clientMessageId, socket);
      ack?.({ ok: true, message });
    } catch (e) {
      const err = { ...refusal(e), clientMessageId: data?.clientMessageId };
      socket.emit("message_error", err);
      ack?.(err);
    }
  });

  socket.on("typing_start", (data) => {
    const id = conversationIdOf(data);
    socket.to(`conversation:${id}`).emit("user_typing", { conversationId: id, userId: who.id });
  });
  socket.on("typing_stop", (data) => {
    const id = conversationIdOf(data);
    socket.to(`conversation:${id}`).emit("user_stopped_typing", { conversationId: id, userId: who.id });
  });
});

httpServer.listen(Number(PORT), "127.0.0.1", () => {
  console.log(`node-seed (Express + socket.io + Mongoose) listening on http://127.0.0.1:${httpServer.address().port}`);
});
