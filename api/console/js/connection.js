// The connection: the socket, its events, and the REST fallback (send over REST and poll while the socket is down).

import { io } from "../vendor/socket.io.esm.min.js";
import { onMessage, onMessageChanged, onMessageDeleted, onNotification, onPresence, onReaction, onRead, onStatus, onTyping, openCustomerChat, setPresence } from "./chat.js";
import { showError } from "./dom.js";
import { loadConversations, onAssigned, onConversationUpdated } from "./inbox.js";
import { api } from "./rest.js";
import { showSignIn } from "./session.js";
import { $, PAGE, POLL_MS, state } from "./state.js";

export function setConn(mode, detail) {
  const c = $("conn");
  c.hidden = false;
  c.dataset.state = mode;
  c.textContent =
    mode === "live" ? "Live" : mode === "rest" ? "Offline — sending over REST" : detail || "Connecting…";
}

export function connectSocket() {
  setConn("connecting");
  const socket = io(document.querySelector('meta[name="omnibiz-socket-url"]').content || undefined, {
    auth: { token: state.token },
    reconnectionDelayMax: 5000,
  });
  state.socket = socket;
  socket.on("connect", onConnected);
  socket.on("disconnect", (reason) => {
    state.live = false;
    setConn("rest");
    startPolling();
    if (reason === "io server disconnect") socket.connect(); // a draining server: come back elsewhere
  });
  socket.on("connect_error", (err) => {
    state.live = false;
    setConn("rest");
    startPolling();
    if (!socket.active) {
      // The server refused this client (e.g. its token); it will not retry by itself.
      showError($("chat-error"), `Live updates refused: ${err.message}. Messages still go over REST.`);
    }
  });
  socket.on("message_received", onMessage);
  socket.on("message_sent", onMessage);
  socket.on("message_status", onStatus);
  socket.on("messages_read", onRead);
  socket.on("new_message_notification", onNotification);
  socket.on("user_typing", (p) => onTyping(p, true));
  socket.on("user_stopped_typing", (p) => onTyping(p, false));
  socket.on("presence", onPresence);
  socket.on("conversation_updated", onConversationUpdated);
  socket.on("conversation_assigned", onAssigned);
  // Added to a group or removed from one: the lists change.
  socket.on("group_members_changed", () => (state.owner ? loadConversations() : openCustomerChat()).catch(() => {}));
  socket.on("message_updated", onMessageChanged);
  socket.on("message_deleted", onMessageDeleted);
  socket.on("reaction_added", onReaction);
  socket.on("reaction_removed", onReaction);
  socket.on("message_error", (p) => showError($("chat-error"), p?.error || "The server refused a message."));
}

export async function onConnected() {
  state.live = true;
  stopPolling();
  setConn("live");
  showError($("chat-error"), "");
  const o = state.open;
  if (o?.id) {
    joinOpen(); // replays missed messages after lastSeq
    refreshOpen().catch(() => {}); // presence, and reads that happened meanwhile
  }
  // Catch up on what happened while the socket was down.
  if (state.owner) loadConversations().catch(() => {});
  else if (!o?.id) openCustomerChat().catch(() => {});
}

export function joinOpen() {
  const o = state.open;
  if (!o?.id || !state.socket?.connected) return;
  state.socket.emit("join_conversation", { conversationId: o.id, lastSeq: o.highest }, (ack) => {
    if (ack && ack.ok === false) showError($("chat-error"), ack.error || "Could not join the conversation.");
  });
}

// Brings the open conversation up to date over REST: messages after the
// highest seq shown (page by page), the other side's presence, and — while
// some of our messages are not yet shown as read — their current statuses.
export async function refreshOpen() {
  const o = state.open;
  if (!o?.id) return;
  let more = true;
  while (more && state.open === o) {
    const r = await api("GET", `/api/messages/conversations/${o.id}?after=${o.highest}&limit=${PAGE}`);
    setPresence(r.conversation.isOnline);
    for (const m of r.messages) onMessage(m);
    more = r.hasMore && r.messages.length > 0;
  }
  const unread = [...o.bySeq.values()].some((li) => li.classList.contains("mine") && li.dataset.status !== "read");
  if (unread && state.open === o) {
    const r = await api("GET", `/api/messages/conversations/${o.id}?limit=${PAGE}`);
    for (const m of r.messages) onMessage(m, { quiet: true });
  }
}

export function startPolling() {
  if (state.pollTimer) return;
  state.pollTimer = setInterval(poll, POLL_MS);
}

export function stopPolling() {
  clearInterval(state.pollTimer);
  state.pollTimer = null;
}

export async function poll() {
  if (state.live) return stopPolling();
  try {
    const o = state.open;
    if (o?.id) {
      await refreshOpen();
    } else if (!state.owner) {
      await openCustomerChat();
    }
    if (state.owner) await loadConversations();
  } catch (e) {
    if (e.status === 401) return showSignIn(`Signed out: ${e.message}`);
    setConn("rest");
  }
}
