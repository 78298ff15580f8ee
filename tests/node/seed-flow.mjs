// The seed front end's event flow, with the official socket.io-client.
// Usage: BASE=http://127.0.0.1:5000 OWNER_TOKEN=… CUSTOMER_TOKEN=… CONV=… MODE=websocket|polling|upgrade node seed-flow.mjs
import { io } from "socket.io-client";

const { BASE, OWNER_TOKEN, CUSTOMER_TOKEN, CONV, MODE = "websocket" } = process.env;
const transports = { websocket: ["websocket"], polling: ["polling"], upgrade: ["polling", "websocket"] }[MODE];
if (!BASE || !OWNER_TOKEN || !CUSTOMER_TOKEN || !CONV || !transports) {
  console.error("missing BASE, OWNER_TOKEN, CUSTOMER_TOKEN, CONV or a valid MODE");
  process.exit(2);
}

const fail = (msg) => {
  console.error(`FAIL (${MODE}): ${msg}`);
  process.exit(1);
};
setTimeout(() => fail("timed out"), 20000).unref();

const connect = (token) =>
  new Promise((resolve, reject) => {
    const s = io(BASE, { auth: { token }, transports, reconnection: false, forceNew: true });
    s.once("connect", () => resolve(s));
    s.once("connect_error", (err) => reject(err));
  });
const once = (s, event) => new Promise((resolve) => s.once(event, resolve));
const ack = (s, event, data) => new Promise((resolve) => s.emit(event, data, resolve));

try {
  // A bad token is refused with a readable connect_error.
  await connect("not-a-token").then(
    () => fail("a bad token was accepted"),
    (err) => {
      if (!/invalid/i.test(err.message)) fail(`unexpected connect_error message: ${err.message}`);
    },
  );

  const owner = await connect(OWNER_TOKEN);
  const customer = await connect(CUSTOMER_TOKEN);

  // The seed joins with a bare id; the object form answers with an ack.
  owner.emit("join_conversation", CONV);
  const joined = await ack(customer, "join_conversation", { conversationId: CONV });
  if (!joined?.ok) fail(`join ack: ${JSON.stringify(joined)}`);
  await new Promise((r) => setTimeout(r, 200)); // the owner's bare join has no ack to wait for

  // send_message with the seed's payload: message_sent to the sender, message_received to the other side.
  const received = once(owner, "message_received");
  const sentEvent = once(customer, "message_sent");
  const reply = await ack(customer, "send_message", {
    conversationId: CONV,
    message: `hello over ${MODE}`,
    senderId: "ignored",
    senderName: "ignored",
  });
  if (!reply?.ok) fail(`send ack: ${JSON.stringify(reply)}`);
  const [got, sent] = await Promise.all([received, sentEvent]);
  if (got.content !== `hello over ${MODE}`) fail(`message_received content: ${JSON.stringify(got)}`);
  if (sent.id !== got.id || reply.message.id !== got.id) fail("message ids differ between ack, message_sent, message_received");
  if (got.senderRole !== "customer" || typeof got.seq !== "number") fail(`payload: ${JSON.stringify(got)}`);

  // Typing, to the other side.
  const typing = once(customer, "user_typing");
  owner.emit("typing_start", { conversationId: CONV });
  const t = await typing;
  if (t.conversationId !== CONV) fail(`user_typing: ${JSON.stringify(t)}`);
  const stopped = once(customer, "user_stopped_typing");
  owner.emit("typing_stop", { conversationId: CONV });
  await stopped;

  // Errors come back as message_error.
  const err = once(customer, "message_error");
  customer.emit("send_message", { conversationId: CONV, message: "   " });
  const e = await err;
  if (e.code !== "VALIDATION_ERROR") fail(`message_error: ${JSON.stringify(e)}`);

  const transport = owner.io.engine.transport.name;
  owner.disconnect();
  customer.disconnect();
  console.log(JSON.stringify({ ok: true, mode: MODE, transport }));
  process.exit(0);
} catch (e) {
  fail(e?.stack ?? String(e));
}
