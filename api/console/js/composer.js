// Composing and sending: text, quick replies, files, voice messages, retries, older pages.

import { TICKS, cancelReply, messageNode, onMessage, openConversation, scrollToEnd, setStatus } from "./chat.js";
import { el, randomId, showError } from "./dom.js";
import { ApiError, api } from "./rest.js";
import { $, ACK_TIMEOUT_MS, PAGE, TYPING_IDLE_MS, state } from "./state.js";
import { toggleRecording } from "./voice.js";

// The composer's hint, short enough for the box it is in: on a phone's width
// the long one was clipped mid-line inside the three-line box.
const NARROW = window.matchMedia("(max-width: 600px)");

export function composerHint() {
  const shortcuts = [...(state.quickReplies?.keys() || [])].map((k) => `/${k}`).join(" ");
  const hint = NARROW.matches
    ? `Message…${shortcuts ? ` (${shortcuts})` : ""}`
    : `Write a message… (Enter sends, Shift+Enter for a new line${shortcuts ? `; quick replies: ${shortcuts}` : ""})`;
  $("compose").placeholder = hint;
}

export function wireChat() {
  const box = $("compose");
  composerHint();
  NARROW.addEventListener("change", composerHint);
  $("composer").addEventListener("submit", (e) => {
    e.preventDefault();
    let text = box.value.trim();
    if (!text) return;
    const reply = /^\/([a-z0-9_-]{1,32})$/i.exec(text);
    if (reply && state.quickReplies?.has(reply[1].toLowerCase())) text = state.quickReplies.get(reply[1].toLowerCase());
    box.value = "";
    stopTyping();
    send(text);
  });
  box.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("composer").requestSubmit();
    }
  });
  box.addEventListener("input", onComposeInput);
  $("older").addEventListener("click", loadOlder);
  $("reply-cancel").addEventListener("click", cancelReply);
  $("record").addEventListener("click", () => toggleRecording(sendFile));
  $("attach-file").addEventListener("change", async (e) => {
    const file = e.target.files?.[0];
    e.target.value = "";
    if (file) await sendFile(file);
  });
}

// Upload first, then send the upload's id with the message.
export async function sendFile(file, caption = file.name) {
  showError($("chat-error"), "");
  let o = state.open;
  try {
    if (!o?.id) {
      const r = await api("POST", "/api/messages/conversations", {});
      await openConversation(r.conversation.id);
      o = state.open;
    }
    const form = new FormData();
    form.append("file", file, file.name);
    const res = await fetch(`/api/messages/conversations/${o.id}/attachments`, {
      method: "POST",
      headers: { Authorization: `Bearer ${state.token}` },
      body: form,
    });
    const data = await res.json().catch(() => null);
    if (!res.ok || !data?.success) throw new ApiError(data?.message || `${res.status}`, res.status, data?.code);
    const text = $("compose").value.trim();
    $("compose").value = "";
    await send(text || caption, randomId(), null, [{ id: data.attachment.id }]);
  } catch (err) {
    showError($("chat-error"), `Could not attach ${file.name}: ${err.message}`);
  }
}

export function onComposeInput() {
  const o = state.open;
  if (!o?.id || !state.socket?.connected) return;
  const now = Date.now();
  if (now - state.typingSent > 2000) {
    state.typingSent = now;
    state.socket.emit("typing_start", { conversationId: o.id });
  }
  clearTimeout(state.typingTimer);
  state.typingTimer = setTimeout(stopTyping, TYPING_IDLE_MS);
}

export function stopTyping() {
  clearTimeout(state.typingTimer);
  if (state.typingSent && state.open?.id && state.socket?.connected) {
    state.socket.emit("typing_stop", { conversationId: state.open.id });
  }
  state.typingSent = 0;
}

export async function send(content, clientMessageId = randomId(), pendingNode = null, attachments = []) {
  let o = state.open;
  showError($("chat-error"), "");
  if (!o?.id) {
    // The customer's first message creates the conversation (the seed's flow).
    try {
      const r = await api("POST", "/api/messages/conversations", {});
      await openConversation(r.conversation.id);
      o = state.open;
    } catch (e) {
      $("compose").value = content;
      return showError($("chat-error"), `Could not start the conversation: ${e.message}`);
    }
  }
  const li = pendingNode || messageNode({ content, senderId: state.me.id }, "sending");
  if (pendingNode) setStatus(li, "sending");
  li.querySelector(".retry")?.remove();
  o.pending.set(clientMessageId, li);
  $("messages").append(li);
  scrollToEnd();
  const body = { conversationId: o.id, content, clientMessageId, attachments };
  const note = state.owner && $("note-toggle").checked && !$("note-toggle-row").hidden;
  if (note || li.dataset.private === "true") {
    body.isPrivate = true;
    li.dataset.private = "true";
    li.classList.add("note");
  }
  if (state.replyTo && !pendingNode) {
    body.replyTo = state.replyTo.id;
    li.dataset.replyTo = state.replyTo.id;
    cancelReply();
  } else if (li.dataset.replyTo) {
    body.replyTo = li.dataset.replyTo; // a retry keeps its quote
  }
  if (state.socket?.connected) {
    try {
      const ack = await state.socket.timeout(ACK_TIMEOUT_MS).emitWithAck("send_message", body);
      if (ack?.ok) return onMessage(ack.message);
      return failed(o, clientMessageId, content, ack?.error || "refused", attachments);
    } catch {
      // No ack in time: the same clientMessageId over REST is stored at most once.
    }
  }
  try {
    const r = await api("POST", "/api/messages/send", body);
    onMessage(r.message);
  } catch (e) {
    failed(o, clientMessageId, content, e.message, attachments);
  }
}

export function failed(o, clientMessageId, content, reason, attachments = []) {
  const li = o.pending.get(clientMessageId);
  if (!li) return;
  li.dataset.status = "failed";
  const tick = li.querySelector(".tick");
  if (tick) {
    tick.textContent = TICKS.failed;
    tick.setAttribute("aria-label", `Not sent: ${reason}`);
  }
  li.querySelector(".meta-line").append(
    el("button", { type: "button", class: "retry", onclick: () => send(content, clientMessageId, li, attachments), text: "Retry" }),
  );
  showError($("chat-error"), `Message not sent: ${reason}`);
}

export async function loadOlder() {
  const o = state.open;
  if (!o?.id || !Number.isFinite(o.lowest)) return;
  try {
    const r = await api("GET", `/api/messages/conversations/${o.id}?before=${o.lowest}&limit=${PAGE}`);
    const log = $("messages");
    const keep = log.scrollHeight - log.scrollTop;
    for (const m of r.messages) onMessage(m, { quiet: true });
    o.hasOlder = r.hasMore;
    $("older").hidden = !o.hasOlder;
    log.scrollTop = log.scrollHeight - keep;
  } catch (e) {
    showError($("chat-error"), `Could not load earlier messages: ${e.message}`);
  }
}
