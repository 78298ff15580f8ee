// The Node.js service's side of the drop-in tests: writes a database with the
// seed's own Mongoose models (./models.cjs) the way the Node service does,
// writes new messages while OmniBiz runs, and reads back what OmniBiz wrote,
// running Mongoose's validation on every document.
//
//   MONGODB_URI=mongodb://…/db?directConnection=true node legacy.mjs seed
//   … node legacy.mjs send <conversationId> <owner|customer> <content>
//   … node legacy.mjs burst <conversationId> <owner|customer> <n> <prefix>
//   … node legacy.mjs verify <conversationId>
//
// Each command prints one JSON object on stdout.
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const { mongoose, User, Customer, Conversation, Message } = require("./models.cjs");

const [command, ...args] = process.argv.slice(2);
const uri = process.env.MONGODB_URI;
if (!uri) {
  console.error("MONGODB_URI is required");
  process.exit(2);
}

// The seed controller's sendMessage: store the message, then update the
// conversation's preview and the recipient's unread count.
async function nodeSend(conv, from, content, createdAt) {
  const owner = from === "owner";
  const sender = owner
    ? { id: conv.businessOwnerId, model: "User", name: conv.businessOwnerName, role: "business_owner" }
    : { id: conv.customerId, model: "Customer", name: conv.customerName, role: "customer" };
  const doc = new Message({
    conversationId: conv._id,
    senderId: sender.id,
    senderModel: sender.model,
    senderName: sender.name,
    senderRole: sender.role,
    content,
    attachments: [],
  });
  if (createdAt) {
    // History: keep the given time (Mongoose would stamp "now").
    doc.createdAt = createdAt;
    doc.updatedAt = createdAt;
    await doc.save({ timestamps: false });
  } else {
    await doc.save();
  }
  const recipient = owner ? "unreadCount.customer" : "unreadCount.businessOwner";
  await Conversation.updateOne(
    { _id: conv._id },
    {
      $set: { lastMessage: { content, senderId: sender.id, timestamp: doc.createdAt } },
      $inc: { [recipient]: 1 },
    },
  );
  return doc;
}

async function seed() {
  const owner = await User.create({
    name: "Lena Legacy",
    email: "lena@legacy.example",
    phone: "+254 700 000001",
    role: "business_owner",
    businessName: "Legacy Crafts",
  });
  const base = Date.parse("2025-10-01T08:00:00.000Z");
  const customers = [];
  for (let i = 0; i < 3; i++) {
    const c = new Customer({
      name: `Legacy Customer ${i}`,
      email: `c${i}@legacy.example`,
      phone: `+254 700 10000${i}`,
      invitedBy: owner._id,
      totalOrders: 2 + i,
      totalSpent: 1500 * (i + 1),
      lastLogin: new Date(base + 86400000 * (20 + i)),
    });
    c.createdAt = new Date(base - 86400000 * (30 - i));
    c.updatedAt = c.createdAt;
    await c.save({ timestamps: false });
    customers.push(c);
  }
  const conversations = [];
  // Customer 0 and 1 have chatted; customer 2 has none.
  for (let ci = 0; ci < 2; ci++) {
    const c = customers[ci];
    const conv = await Conversation.create({
      businessOwnerId: owner._id,
      customerId: c._id,
      businessOwnerName: owner.businessName,
      customerName: c.name,
      customerEmail: c.email,
      customerPhone: c.phone,
    });
    const messages = [];
    const n = ci === 0 ? 40 : 7;
    for (let i = 0; i < n; i++) {
      const from = i % 3 === 0 ? "owner" : "customer";
      // Messages come in pairs with the same timestamp: ties are broken by _id.
      const at = new Date(base + ci * 3600000 + Math.floor(i / 2) * 60000);
      const m = await nodeSend(conv, from, `legacy ${ci}-${i}`, at);
      messages.push(m);
    }
    // The owner read the customer's first messages (the old service's read path).
    const readUpTo = messages[Math.min(4, n - 1)].createdAt;
    await Message.updateMany(
      { conversationId: conv._id, senderModel: "Customer", createdAt: { $lte: readUpTo } },
      { $set: { status: "read" }, $push: { readBy: { userId: owner._id, readAt: new Date() } } },
    );
    // One message was deleted in the old service.
    await Message.updateOne({ _id: messages[2]._id }, { $set: { isDeleted: true } });
    conversations.push({ id: String(conv._id), customer: String(c._id) });
  }
  // The order OmniBiz must number them in: (createdAt, _id).
  const expected = {};
  for (const conv of conversations) {
    const ms = await Message.find({ conversationId: conv.id }).sort({ createdAt: 1, _id: 1 }).lean();
    expected[conv.id] = ms.map((m) => ({ id: String(m._id), content: m.content, deleted: m.isDeleted }));
  }
  return {
    owner: String(owner._id),
    customers: customers.map((c) => ({
      id: String(c._id),
      lastLogin: c.lastLogin.toISOString(),
      joinedDate: c.createdAt.toISOString(),
    })),
    conversations,
    expected,
  };
}

async function send(convId, from, content) {
  const conv = await Conversation.findById(convId);
  if (!conv) throw new Error(`no conversation ${convId}`);
  const m = await nodeSend(conv, from, content);
  return { id: String(m._id) };
}

// n sends in a row, as a busy Node service makes them.
async function burst(convId, from, n, prefix) {
  const conv = await Conversation.findById(convId);
  if (!conv) throw new Error(`no conversation ${convId}`);
  const ids = [];
  for (let i = 0; i < n; i++) ids.push(String((await nodeSend(conv, from, `${prefix} ${i}`))._id));
  return { ids };
}

// Loads every conversation and message through the models (hydrated, so
// casting applies) and validates each one.
async function verify(convId) {
  const errors = [];
  const check = (kind, doc) => {
    const err = doc.validateSync();
    if (err) errors.push(`${kind} ${doc._id}: ${err.message}`);
  };
  for (const c of await Conversation.find()) check("conversation", c);
  for (const m of await Message.find()) check("message", m);
  const conv = await Conversation.findById(convId);
  const messages = await Message.find({ conversationId: convId }).sort({ createdAt: 1, _id: 1 });
  return {
    errors,
    conversation: conv && {
      businessOwnerName: conv.businessOwnerName ?? null,
      customerName: conv.customerName ?? null,
      lastMessage: conv.lastMessage?.content ?? null,
      lastMessageSender: conv.lastMessage?.senderId ? String(conv.lastMessage.senderId) : null,
      lastMessageAt: conv.lastMessage?.timestamp ? conv.lastMessage.timestamp.toISOString() : null,
      unreadCount: { businessOwner: conv.unreadCount.businessOwner, customer: conv.unreadCount.customer },
      status: conv.status,
      createdAt: conv.createdAt ? conv.createdAt.toISOString() : null,
    },
    messages: messages.map((m) => ({
      id: String(m._id),
      content: m.content,
      senderModel: m.senderModel,
      senderRole: m.senderRole,
      status: m.status,
      readBy: m.readBy.map((r) => String(r.userId)),
      isDeleted: m.isDeleted,
      createdAt: m.createdAt ? m.createdAt.toISOString() : null,
    })),
  };
}

try {
  await mongoose.connect(uri, { serverSelectionTimeoutMS: 10000, autoIndex: true });
  let out;
  if (command === "seed") out = await seed();
  else if (command === "send") out = await send(args[0], args[1], args[2]);
  else if (command === "burst") out = await burst(args[0], args[1], Number(args[2]), args[3]);
  else if (command === "verify") out = await verify(args[0]);
  else throw new Error(`unknown command ${command}`);
  console.log(JSON.stringify(out));
  await mongoose.disconnect();
} catch (e) {
  console.error(e && e.stack ? e.stack : String(e));
  process.exit(1);
}
