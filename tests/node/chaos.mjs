// Receivers for the chaos suite (tests/chaos.rs): official socket.io-client
// sockets, one per conversation, that keep the highest `seq` they saw and,
// when their gateway goes away, move to the next gateway and rejoin with
// it as `lastSeq` — what the README's delivery contract tells clients to do.
// One of them is a slow consumer (it stalls its event loop), one also sends
// over the socket with retries by clientMessageId.
//
//   GATEWAYS=http://…,http://… CLIENTS='[{"token":…,"conversationId":…,"slow":false}]'
//   SENDER='{"token":…,"conversationId":…}' node chaos.mjs
//
// Prints one JSON report at the end (see the protocol below).
import { io } from "socket.io-client";
import readline from "node:readline";

const gateways = process.env.GATEWAYS.split(",");
const clients = JSON.parse(process.env.CLIENTS);
const sender = process.env.SENDER ? JSON.parse(process.env.SENDER) : null;
const report = { receivers: [], sender: null };

function receiver(spec, index) {
  const r = { conversationId: spec.conversationId, slow: !!spec.slow, seqs: [], reconnects: 0, gatewaysUsed: [], errors: [] };
  let highest = 0;
  let gw = index % gateways.length;
  let socket = null;
  let stopped = false;
  const connect = () => {
    if (stopped) return;
    const url = gateways[gw];
    r.gatewaysUsed.push(gw);
    socket = io(url, { auth: { token: spec.token }, reconnection: false, forceNew: true, timeout: 3000 });
    // A join refused while the store is down is tried again until it holds.
    const join = () =>
      socket.emit("join_conversation", { conversationId: spec.conversationId, lastSeq: highest }, (ack) => {
        if (ack?.ok) return;
        r.errors.push(`join: ${JSON.stringify(ack)}`);
        if (socket.connected) setTimeout(join, 500);
      });
    socket.on("connect", join);
    const onMessage = (m) => {
      if (m.conversationId !== spec.conversationId) return;
      r.seqs.push(m.seq);
      if (m.seq > highest) highest = m.seq;
    };
    socket.on("message_received", onMessage);
    socket.on("message_sent", onMessage);
    const retry = (why) => {
      if (stopped) return;
      socket.removeAllListeners();
      socket.close();
      r.reconnects += 1;
      gw = (gw + 1) % gateways.length; // move to the other gateway
      setTimeout(connect, 200 + Math.random() * 300);
    };
    socket.on("disconnect", retry);
    socket.on("connect_error", retry);
  };
  connect();
  if (spec.slow) {
    // A consumer too slow to keep up: its event loop stalls 1.5 s of every 3 s.
    const stall = setInterval(() => {
      const until = Date.now() + 1500;
      while (Date.now() < until) {
        /* busy */
      }
    }, 3000);
    r.stop = () => clearInterval(stall);
  }
  r.highest = () => highest;
  r.close = () => {
    stopped = true;
    r.stop?.();
    socket?.removeAllListeners();
    socket?.close();
  };
  return r;
}

function socketSender(spec) {
  // Sends every 250 ms over the socket; a failed or unanswered send is retried
  // with the same clientMessageId until acknowledged.
  const s = { acked: [], errorCodes: {}, messageErrors: 0, attempts: 0 };
  let gw = 0;
  let socket = null;
  let n = 0;
  let pending = null;
  let stopped = false;
  const connect = () => {
    if (stopped) return;
    socket = io(gateways[gw], { auth: { token: spec.token }, reconnection: false, forceNew: true, timeout: 3000 });
    socket.on("message_error", () => (s.messageErrors += 1));
    const retry = () => {
      if (stopped) return;
      socket.removeAllListeners();
      socket.close();
      gw = (gw + 1) % gateways.length;
      setTimeout(connect, 300);
    };
    socket.on("disconnect", retry);
    socket.on("connect_error", retry);
  };
  connect();
  const tick = async () => {
    if (stopped) return;
    if (!pending) pending = { clientMessageId: `sock-${process.pid}-${n++}`, content: `socket message ${n}` };
    if (socket?.connected) {
      s.attempts += 1;
      try {
        const ack = await socket.timeout(4000).emitWithAck("send_message", { conversationId: spec.conversationId, ...pending });
        if (ack?.ok) {
          s.acked.push({ clientMessageId: pending.clientMessageId, seq: ack.message.seq, id: ack.message.id });
          pending = null;
        } else {
          s.errorCodes[ack?.code || "none"] = (s.errorCodes[ack?.code || "none"] || 0) + 1;
        }
      } catch {
        s.errorCodes.TIMEOUT = (s.errorCodes.TIMEOUT || 0) + 1;
      }
    }
    setTimeout(tick, 250);
  };
  setTimeout(tick, 500);
  s.drain = async (deadline) => {
    while (pending && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
    stopped = true;
    socket?.removeAllListeners();
    socket?.close();
  };
  return s;
}

const receivers = clients.map(receiver);
const sock = sender ? socketSender(sender) : null;

// Protocol on stdin/stdout: "stop" → the socket sender finishes what it has
// in flight and we answer "stopped"; then {"lastSeq":{conv: n}} (what the
// store holds) → wait until every receiver has seen its last seq (or 20 s).
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const next = async () => {
  for (;;) {
    const { value, done } = await lines.next();
    if (done) return null;
    if (value.trim()) return value.trim();
  }
};
await next(); // "stop"
if (sock) await sock.drain(Date.now() + 15000);
console.log("stopped");
const drain = JSON.parse((await next()) || "{}");
const deadline = Date.now() + 20000;
if (drain?.lastSeq) {
  while (Date.now() < deadline && receivers.some((r) => r.highest() < (drain.lastSeq[r.conversationId] ?? 0))) {
    await new Promise((r) => setTimeout(r, 100));
  }
}
for (const r of receivers) {
  r.close();
  const { close, highest, stop, ...plain } = r;
  report.receivers.push(plain);
}
if (sock) report.sender = { acked: sock.acked, errorCodes: sock.errorCodes, messageErrors: sock.messageErrors, attempts: sock.attempts };
console.log(JSON.stringify(report));
process.exit(0);
