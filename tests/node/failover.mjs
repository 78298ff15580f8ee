// A customer on polling only (through a balancer without affinity) who
// keeps the highest seq seen and rejoins with it after any reconnect.
//   BASE=… TOKEN=… CONV=… EXPECT=N node failover.mjs
// Prints {"ready":true,"sid":…} once joined, then, once EXPECT messages
// arrived (or after 30 s), {"seqs":[…],"contents":[…],"reconnects":n}.
import { io } from "socket.io-client";

const { BASE, TOKEN, CONV, EXPECT } = process.env;
let lastSeq = 0;
let reconnects = 0;
const seqs = [];
const contents = [];
const socket = io(BASE, {
  auth: { token: TOKEN },
  transports: ["polling"],
  reconnectionDelay: 100,
  reconnectionDelayMax: 500,
});
const done = () => {
  console.log(JSON.stringify({ seqs, contents, reconnects }));
  socket.close();
  process.exit(0);
};
setTimeout(done, 30000).unref();
socket.on("message_received", (m) => {
  if (m.conversationId !== CONV) return;
  seqs.push(m.seq);
  contents.push(m.content);
  lastSeq = Math.max(lastSeq, m.seq);
  if (seqs.length >= Number(EXPECT)) done();
});
let first = true;
socket.io.on("reconnect", () => reconnects++);
socket.on("connect", () => {
  socket.emit("join_conversation", { conversationId: CONV, lastSeq }, (ack) => {
    if (!ack || !ack.ok) {
      console.error("join failed", JSON.stringify(ack));
      process.exit(1);
    }
    if (first) console.log(JSON.stringify({ ready: true, sid: socket.io.engine.id }));
    first = false;
  });
});
