// The open conversation: its message log, statuses, edits and deletes, receipts, typing and presence.

import { failed } from "./composer.js";
import { joinOpen, refreshOpen } from "./connection.js";
import { debounce, el, showError, toast, when } from "./dom.js";
import { fillMeta, loadConversations, renderConversations, showArchived } from "./inbox.js";
import { notifyHidden } from "./notify.js";
import { api } from "./rest.js";
import { voiceNode } from "./voice.js";
import { $, PAGE, TYPING_IDLE_MS, state } from "./state.js";

export function openState(conv) {
  return {
    id: conv?.id || null,
    conv,
    bySeq: new Map(), // seq -> <li>
    pending: new Map(), // clientMessageId -> <li>
    highest: 0, // highest seq shown: the lastSeq for a rejoin
    lowest: Infinity,
    hasOlder: false,
    readSent: 0,
  };
}

export async function openConversation(id) {
  const prev = state.open;
  if (prev?.id && prev.id !== id && state.socket?.connected) state.socket.emit("leave_conversation", { conversationId: prev.id });
  const r = await api("GET", `/api/messages/conversations/${id}?limit=${PAGE}`).catch((e) => {
    showError($("chat-error"), `Could not open the conversation: ${e.message}`);
    return null;
  });
  if (!r) return;
  state.open = openState(r.conversation);
  state.open.hasOlder = r.hasMore;
  if (!$("customer-convs-row").hidden) $("customer-convs").value = id;
  showChat(r.conversation);
  for (const m of r.messages) onMessage(m, { quiet: true });
  scrollToEnd();
  joinOpen();
  markRead();
  const c = state.conversations.get(id);
  if (c) c.unreadCount = 0;
  renderConversations();
  $("app").dataset.view = "chat";
}

export function showChat(conv) {
  $("messages").replaceChildren();
  $("chat-empty").hidden = !!conv;
  $("composer").hidden = false;
  $("typing").textContent = "";
  showError($("chat-error"), "");
  $("older").hidden = !state.open.hasOlder;
  cancelReply();
  $("conv-meta").hidden = !(state.owner && conv);
  if (conv) {
    $("chat-title").textContent = conv.name;
    setPresence(conv.isOnline);
    if (state.owner) fillMeta(conv);
  }
  showArchived(!!conv?.archived);
}

export function setPresence(online) {
  const o = state.open;
  if (!o?.conv) return;
  o.conv.isOnline = online;
  const contact = [o.conv.email, o.conv.phone].filter(Boolean).join(" · ");
  $("chat-sub").textContent = `${online ? "● online" : "○ offline"}${contact ? ` · ${contact}` : ""}`;
}

export async function openCustomerChat() {
  const r = await api("GET", "/api/messages/conversations");
  // A customer in groups too: a choice between their conversations.
  const many = r.conversations.length > 1;
  $("customer-convs-row").hidden = !many;
  if (many) {
    const pick = $("customer-convs");
    const keep = pick.value;
    pick.replaceChildren(
      ...r.conversations.map((c) => el("option", { value: c.id, text: c.type === "group" ? `${c.name} (group)` : c.name })),
    );
    if (keep && r.conversations.some((c) => c.id === keep)) pick.value = keep;
    if (!pick.dataset.wired) {
      pick.dataset.wired = "true";
      pick.addEventListener("change", () => openConversation(pick.value));
    }
  }
  const conv = r.conversations[0];
  if (!conv) {
    if (!state.open) {
      state.open = openState(null);
      showChat(null);
      $("chat-title").textContent = "Messages";
      $("chat-sub").textContent = "Send your first message: it starts the conversation with the business.";
      $("chat-empty").hidden = true;
    }
    return;
  }
  // The one open stays open while it is still theirs.
  if (state.open?.id && r.conversations.some((c) => c.id === state.open.id)) return;
  await openConversation(conv.id);
}

export function scrollToEnd() {
  const log = $("messages");
  log.scrollTop = log.scrollHeight;
}

export function isMine(m) {
  return m.senderId === state.me.id;
}

export const STATUS_TEXT = { sending: "Sending…", sent: "Sent", delivered: "Delivered", read: "Read", failed: "Not sent" };
export const TICKS = { sending: "…", sent: "✓", delivered: "✓✓", read: "✓✓", failed: "!" };

export function messageNode(m, status) {
  const mine = isMine(m) || status === "sending";
  const li = el("li", { class: `msg${mine ? " mine" : ""}${m.isPrivate ? " note" : ""}`, "data-status": status, "data-seq": m.seq ? String(m.seq) : null, "data-id": m.id || null });
  // On the business side, a teammate's message says who wrote it; a note says it is one.
  const teammate = state.owner && !mine && m.senderRole === "business_owner";
  const inGroup = state.open?.conv?.type === "group" && !mine && !m.isSystem;
  if (m.isSystem) li.classList.add("system");
  if (m.isPrivate || teammate || inGroup) {
    const who = mine ? "you" : m.senderName;
    li.append(el("span", { class: "sender", text: m.isPrivate ? `Internal note · ${who}` : who }));
  }
  li.append(el("blockquote", { class: "quote", hidden: true }));
  li.append(el("span", { class: "content", text: m.content }));
  li.append(el("div", { class: "files" }));
  li.append(el("div", { class: "card-box" }));
  li.append(el("div", { class: "reactions", role: "group", "aria-label": "Reactions" }));
  const meta = el("span", { class: "meta-line" });
  meta.append(el("span", { class: "visually-hidden", text: mine ? "You, " : `${m.senderName}, ` }));
  meta.append(el("time", { datetime: m.timestamp || "", text: when(m.timestamp || new Date().toISOString()) }));
  meta.append(el("span", { class: "edited", text: "" }));
  if (mine) meta.append(el("span", { class: "tick", "aria-label": STATUS_TEXT[status], title: STATUS_TEXT[status], text: TICKS[status] }));
  if (m.id && !m.isDeleted) {
    meta.append(el("button", { type: "button", class: "link-button reply", onclick: () => startReply(m), text: "Reply" }));
    meta.append(el("button", { type: "button", class: "link-button react", "aria-haspopup": "true", onclick: () => togglePicker(li), text: "React" }));
  }
  if (mine && m.id && !m.isDeleted) {
    meta.append(
      el("button", { type: "button", class: "link-button edit", onclick: () => startEdit(li), text: "Edit" }),
      el("button", { type: "button", class: "link-button delete", onclick: () => deleteMessage(li), text: "Delete" }),
    );
  }
  li.append(meta);
  fillMessage(li, m);
  return li;
}

// Content, files, the edit mark and the deletion of a stored message.
export function fillMessage(li, m) {
  if (m.isDeleted) {
    li.classList.add("deleted");
    li.querySelector(".content").textContent = "This message was deleted";
    li.querySelector(".files").replaceChildren();
    li.querySelector(".reactions").replaceChildren();
    for (const b of li.querySelectorAll(".edit, .delete, .react, .reply, .picker")) b.remove();
    return;
  }
  fillReactions(li, m.reactions);
  fillQuote(li, m.replyTo);
  fillCard(li, m.linkPreview);
  li.querySelector(".content").textContent = m.content;
  li.querySelector(".edited").textContent = m.editedAt ? " · edited" : "";
  const files = li.querySelector(".files");
  files.replaceChildren();
  for (const a of m.attachments || []) files.append(attachmentNode(a));
}

// A link's card (made by the server; its image comes from us, never from the site).
export function fillCard(li, p) {
  const box = li.querySelector(".card-box");
  if (!box || !p) return;
  const card = el("a", { class: "link-card", href: p.url, rel: "noopener noreferrer nofollow", target: "_blank" });
  if (p.imageId) {
    const img = el("img", { alt: "", width: "64", height: "64" });
    card.append(img);
    api("GET", `/api/messages/attachments/${p.imageId}`)
      .then((r) => (img.src = r.thumbnailUrl || r.url))
      .catch(() => img.remove());
  }
  const text = el("span", { class: "card-text" });
  if (p.siteName) text.append(el("small", { text: p.siteName }));
  if (p.title) text.append(el("strong", { text: p.title }));
  if (p.description) text.append(el("span", { text: p.description }));
  card.append(text);
  box.replaceChildren(card);
}

// What a reply quotes: who and the start of it, or that it was deleted; a click jumps to the original.
export function fillQuote(li, q) {
  const box = li.querySelector(".quote");
  if (!box || !q) return;
  box.hidden = false;
  box.replaceChildren(
    el("button", {
      type: "button",
      class: "quote-jump",
      "aria-label": q.isDeleted ? "Reply to a deleted message" : `Reply to ${q.senderName}: ${q.excerpt || ""}`,
      onclick: () => jumpTo(q),
      text: q.isDeleted ? "Deleted message" : `${q.senderName}: ${q.excerpt || ""}`,
    }),
  );
}

export async function jumpTo(q) {
  const o = state.open;
  if (!o?.id || q.isDeleted) return;
  const find = () => $("messages").querySelector(`li[data-id="${q.messageId}"]`);
  if (!find() && Number.isFinite(q.seq)) {
    try {
      const r = await api("GET", `/api/messages/conversations/${o.id}?around=${q.seq}&limit=${PAGE}`);
      for (const m of r.messages) onMessage(m, { quiet: true });
    } catch (e) {
      return showError($("chat-error"), `Could not load the quoted message: ${e.message}`);
    }
  }
  const li = find();
  if (!li) return;
  li.scrollIntoView({ block: "center" });
  li.classList.add("flash");
  setTimeout(() => li.classList.remove("flash"), 1500);
}

export function startReply(m) {
  state.replyTo = { id: m.id, who: isMine(m) ? "yourself" : m.senderName, excerpt: (m.content || "").slice(0, 80) };
  $("reply-text").textContent = `Replying to ${state.replyTo.who}: ${state.replyTo.excerpt}`;
  $("reply-bar").hidden = false;
  $("compose").focus();
}

export function cancelReply() {
  state.replyTo = null;
  $("reply-bar").hidden = true;
}

// The quick picks of the reaction picker; any emoji works over the API.
export const QUICK_REACTIONS = ["👍", "❤️", "😂", "😮", "😢", "🙏"];

// A message's reaction chips: the emoji and its count, pressed when it is mine.
export function fillReactions(li, reactions = []) {
  const box = li.querySelector(".reactions");
  if (!box) return;
  box.replaceChildren(
    ...reactions.map((r) => {
      const mine = (r.reactedBy || []).includes(state.me.id);
      return el("button", {
        type: "button",
        class: `reaction${mine ? " mine" : ""}`,
        "aria-pressed": mine ? "true" : "false",
        "aria-label": `${r.emoji} ${r.count}${mine ? ", including you" : ""}`,
        onclick: () => react(li, r.emoji, !mine),
        text: `${r.emoji} ${r.count}`,
      });
    }),
  );
}

export function togglePicker(li) {
  const open = li.querySelector(".picker");
  if (open) return open.remove();
  const picker = el(
    "div",
    { class: "picker", role: "menu", "aria-label": "Pick a reaction" },
    ...QUICK_REACTIONS.map((e) =>
      el("button", { type: "button", role: "menuitem", "aria-label": `React with ${e}`, onclick: () => { picker.remove(); react(li, e, true); }, text: e }),
    ),
  );
  li.querySelector(".meta-line").after(picker);
}

export async function react(li, emoji, add) {
  try {
    const r = await api(add ? "PUT" : "DELETE", `/api/messages/${li.dataset.id}/reactions/${encodeURIComponent(emoji)}`);
    fillReactions(li, r.message.reactions);
  } catch (e) {
    showError($("chat-error"), `Could not react: ${e.message}`);
  }
}

// `reaction_added` / `reaction_removed`: the message's reactions after the change.
export function onReaction(p) {
  const o = state.open;
  if (!o || o.id !== p.conversationId) return;
  const li = $("messages").querySelector(`li[data-id="${p.messageId}"]`);
  if (li) fillReactions(li, p.reactions);
}

export function sizeText(n) {
  return n >= 1048576 ? `${(n / 1048576).toFixed(1)} MB` : `${Math.max(1, Math.round(n / 1024))} KB`;
}

// An attachment: uploads get short-lived signed links (the page's token is
// never put in a URL); links to files elsewhere are shown as links.
export function attachmentNode(a) {
  if (a.id && a.audio?.waveform) return voiceNode(a);
  const label = `${a.name} (${sizeText(a.size || 0)})`;
  if (!a.id) return el("a", { class: "file", href: a.url, rel: "noopener noreferrer", target: "_blank", text: label });
  const link = el("a", { class: "file", rel: "noopener noreferrer", target: "_blank", text: label });
  const box = el("span", { class: "attachment" });
  if (a.thumbnailUrl) box.append(el("img", { class: "thumb", alt: a.name, width: "160" }));
  box.append(link);
  api("GET", `/api/messages/attachments/${a.id}`)
    .then((r) => {
      link.href = r.url;
      const img = box.querySelector("img");
      if (img && r.thumbnailUrl) img.src = r.thumbnailUrl;
    })
    .catch((e) => link.append(` — unavailable: ${e.message}`));
  return box;
}

export function startEdit(li) {
  if (li.querySelector("form.edit-form")) return;
  const content = li.querySelector(".content");
  const box = el("textarea", { rows: "2", maxlength: "5000", "aria-label": "Edit message" });
  box.value = content.textContent;
  const form = el(
    "form",
    { class: "edit-form" },
    box,
    el("button", { type: "submit", text: "Save" }),
    el("button", { type: "button", onclick: () => form.remove(), text: "Cancel" }),
  );
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    try {
      const r = await api("PATCH", `/api/messages/${li.dataset.id}`, { content: box.value });
      fillMessage(li, r.message);
      form.remove();
    } catch (err) {
      showError($("chat-error"), `Could not edit: ${err.message}`);
    }
  });
  content.after(form);
  box.focus();
}

export async function deleteMessage(li) {
  try {
    const r = await api("DELETE", `/api/messages/${li.dataset.id}`);
    fillMessage(li, r.message);
  } catch (e) {
    showError($("chat-error"), `Could not delete: ${e.message}`);
  }
}

export function onMessageChanged(m) {
  const o = state.open;
  if (!o || o.id !== m.conversationId) return;
  const li = o.bySeq.get(m.seq);
  if (li) fillMessage(li, m);
}

export function onMessageDeleted(p) {
  onMessageChanged({ conversationId: p.conversationId, seq: p.seq, isDeleted: true });
}

export function setStatus(li, status) {
  const rank = { sending: 0, failed: 0, sent: 1, delivered: 2, read: 3 };
  if ((rank[li.dataset.status] ?? 0) > rank[status]) return; // statuses only move forward
  li.dataset.status = status;
  const t = li.querySelector(".tick");
  if (t) {
    t.textContent = TICKS[status];
    t.setAttribute("aria-label", STATUS_TEXT[status]);
    t.title = STATUS_TEXT[status];
  }
}

// A stored message from the socket, a replay, REST, or our own ack.
export function onMessage(m, { quiet = false } = {}) {
  if (!m?.conversationId) return;
  if (state.owner) bumpConversation(m);
  const o = state.open;
  if (!o || o.id !== m.conversationId) return;
  if (o.bySeq.has(m.seq)) {
    const known = o.bySeq.get(m.seq);
    if (isMine(m)) setStatus(known, m.status);
    if (m.editedAt || m.isDeleted) fillMessage(known, m); // a change seen while polling
    return;
  }
  let li = m.clientMessageId && o.pending.get(m.clientMessageId);
  if (li) {
    o.pending.delete(m.clientMessageId);
    li.remove();
  }
  li = messageNode(m, m.status);
  // Insert in seq order (almost always at the end).
  const log = $("messages");
  let after = null;
  for (const [seq, node] of o.bySeq) if (seq < m.seq && (!after || seq > Number(after.dataset.seq))) after = node;
  const firstPending = o.pending.size ? o.pending.values().next().value : null;
  if (m.seq > o.highest) log.insertBefore(li, firstPending);
  else if (after) after.after(li);
  else log.prepend(li);
  o.bySeq.set(m.seq, li);
  o.highest = Math.max(o.highest, m.seq);
  o.lowest = Math.min(o.lowest, m.seq);
  if (!isMine(m)) {
    $("typing").textContent = "";
    if (!quiet && state.socket?.connected && m.status === "sent") {
      state.socket.emit("message_delivered", { conversationId: m.conversationId, messageId: m.id });
    }
    markRead();
  }
  if (!quiet) scrollToEnd();
}

export function bumpConversation(m) {
  const c = state.conversations.get(m.conversationId);
  if (!c) return;
  if (!c.lastMessageTime || m.timestamp >= c.lastMessageTime) {
    c.lastMessage = m.content;
    c.lastMessageTime = m.timestamp;
    state.convOrder = [m.conversationId, ...state.convOrder.filter((x) => x !== m.conversationId)];
    renderConversations();
  }
}

export const markRead = debounce(async () => {
  const o = state.open;
  if (!o?.id || document.visibilityState !== "visible" || o.highest <= o.readSent) return;
  const seq = o.highest;
  o.readSent = seq;
  if (state.socket?.connected) {
    state.socket.emit("mark_read", { conversationId: o.id, seq }, () => {});
  } else {
    await api("POST", `/api/messages/conversations/${o.id}/read`).catch(() => {
      o.readSent = 0;
    });
  }
}, 250);
document.addEventListener("visibilitychange", () => markRead());

export function onStatus(p) {
  const o = state.open;
  if (!o || o.id !== p.conversationId) return;
  for (const li of o.bySeq.values()) if (li.dataset.id === p.messageId) setStatus(li, p.status);
}

export function onRead(p) {
  const o = state.open;
  if (p.readerId === state.me.id) {
    const c = state.conversations.get(p.conversationId);
    if (c && c.unreadCount) {
      c.unreadCount = 0;
      renderConversations();
    }
    return;
  }
  if (!o || o.id !== p.conversationId) return;
  // In a group one reader is not everyone: the status comes with the next load.
  if (o.conv?.type === "group") return;
  for (const [seq, li] of o.bySeq) if (seq <= p.upToSeq && li.classList.contains("mine")) setStatus(li, "read");
}

export function onNotification(n) {
  if (state.open?.id === n.conversationId && document.visibilityState === "visible") return;
  notifyHidden(n);
  if (state.owner) {
    const c = state.conversations.get(n.conversationId);
    if (c) {
      c.unreadCount = (c.unreadCount || 0) + 1;
      c.lastMessage = n.preview;
      c.lastMessageTime = new Date().toISOString();
      state.convOrder = [n.conversationId, ...state.convOrder.filter((x) => x !== n.conversationId)];
      renderConversations();
    } else {
      loadConversations().catch(() => {}); // a conversation the customer just started
    }
  } else if (!state.open?.id) {
    openCustomerChat().catch(() => {}); // the business started the conversation
  }
  toast(`New message from ${n.from}: ${n.preview}`);
}

export function onTyping(p, on) {
  const o = state.open;
  if (!o || o.id !== p.conversationId || p.userId === state.me.id) return;
  clearTimeout(state.theirTypingTimer);
  $("typing").textContent = on ? `${p.userName || o.conv?.name || "They"} is typing…` : "";
  // A start whose stop got lost clears itself, as the server's does.
  if (on) state.theirTypingTimer = setTimeout(() => ($("typing").textContent = ""), TYPING_IDLE_MS + 1000);
}

// `presence` says the other side joined or left this conversation; leaving
// it is not going offline, so that case asks the server.
export function onPresence(p) {
  const o = state.open;
  if (o?.conv && p.userId !== state.me.id && o.id === p.conversationId) {
    if (p.online) setPresence(true);
    else refreshOpen().catch(() => {});
  }
  const c = state.conversations.get(p.conversationId);
  if (c && p.userId === c.customerId) {
    c.isOnline = !!p.online;
    renderConversations();
  }
}
