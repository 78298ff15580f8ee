// Many official clients through a balancer at once, as the close race needs:
// in bursts, a third with garbage tokens (refused), half on polling only and
// half upgrading to websocket, each closing at a random moment — right after
// it is refused, right after it sends (before the ack), or after the ack.
//   BASE=… TOKEN=… CONV=… N=240 BURST=24 node stress.mjs
// Prints one JSON object: connected, refused, the clientMessageIds that were
// acknowledged (each must be stored once), connect times, and every error
// a client saw (none expected).
import { io } from "socket.io-client";

const { BASE, TOKEN, CONV } = process.env;
const N = Number(process.env.N || 240);
const BURST = Number(process.env.BURST || 24);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const rnd = (a, b) => a + Math.random() * (b - a);
const out = { connected: 0, refused: 0, acked: [], unacked: [], connectMs: [], errors: [] };

function client(i) {
  const bad = i % 3 === 1;
  const transports = i % 2 ? ["polling"] : ["polling", "websocket"];
  const t0 = Date.now();
  const s = io(BASE, {
    auth: { token: bad ? `garbage-${i}` : TOKEN },
    transports,
    reconnection: false,
    forceNew: true,
    timeout: 10000,
  });
  s.io.engine?.on("error", (e) => out.errors.push(`client ${i}: engine error ${e?.message || e}`));
  return new Promise((resolve) => {
    const finish = () => {
      s.close();
      resolve();
    };
    s.on("connect_error", async (e) => {
      if (bad) out.refused++;
      else out.errors.push(`client ${i}: connect_error ${e.message}`);
      // Closed at once, or a little later: both orders of close and poll.
      if (i % 4 !== 1) await sleep(rnd(0, 40));
      finish();
    });
    s.on("disconnect", (reason) => {
      if (reason !== "io client disconnect") out.errors.push(`client ${i}: disconnected (${reason})`);
    });
    s.on("connect", async () => {
      if (bad) out.errors.push(`client ${i}: a garbage token was accepted`);
      out.connected++;
      out.connectMs.push(Date.now() - t0);
      try {
        const join = await s.timeout(10000).emitWithAck("join_conversation", { conversationId: CONV });
        if (!join?.ok) out.errors.push(`client ${i}: join ${JSON.stringify(join)}`);
        const clientMessageId = `stress-${process.pid}-${i}`;
        const body = { conversationId: CONV, content: `stress ${i}`, clientMessageId };
        if (i % 5 === 0) {
          // Closed right after sending: stored or not, never twice.
          s.emit("send_message", body);
          out.unacked.push(clientMessageId);
          await sleep(rnd(0, 20));
          return finish();
        }
        const ack = await s.timeout(10000).emitWithAck("send_message", body);
        if (ack?.ok) out.acked.push(clientMessageId);
        else out.errors.push(`client ${i}: send ${JSON.stringify(ack)}`);
      } catch (e) {
        out.errors.push(`client ${i}: ${e.message}`);
      }
      await sleep(rnd(0, 200));
      finish();
    });
  });
}

const all = [];
for (let i = 0; i < N; i += BURST) {
  // Pairs and bursts: a burst starts together, the next one while it runs.
  for (let j = i; j < Math.min(N, i + BURST); j++) all.push(client(j));
  await sleep(rnd(50, 250));
}
await Promise.all(all);
out.connectMs.sort((a, b) => a - b);
out.connectMax = out.connectMs.at(-1) ?? 0;
out.connectP50 = out.connectMs[Math.floor(out.connectMs.length / 2)] ?? 0;
delete out.connectMs;
console.log(JSON.stringify(out));
process.exit(0);
