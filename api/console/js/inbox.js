// The owner inbox: tabs, the conversation and customer lists, search, conversation metadata.

import { openConversation } from "./chat.js";
import { debounce, el, money, showError, when } from "./dom.js";
import { api } from "./rest.js";
import { $, SEARCH_DEBOUNCE_MS, state } from "./state.js";

export function wireInbox() {
  const tabs = [$("tab-conversations"), $("tab-customers")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    state.tab = tab === tabs[0] ? "conversations" : "customers";
    reloadTab();
  };
  for (const t of tabs) {
    t.addEventListener("click", () => select(t));
    t.addEventListener("keydown", (e) => {
      if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
      const next = tabs[(tabs.indexOf(t) + 1) % 2];
      next.focus();
      select(next);
    });
  }
  $("search").addEventListener("input", debounce(reloadTab, SEARCH_DEBOUNCE_MS));
  $("conversations-more").addEventListener("click", () => loadConversations({ more: true }));
  $("conv-filter").addEventListener("change", () => loadConversations());
  $("assigned-filter").addEventListener("change", () => loadConversations());
  $("conv-assignee").addEventListener("change", assignOpen);
  $("archive").addEventListener("click", toggleArchived);
  $("customers-more").addEventListener("click", () => loadCustomers({ more: true }));
  $("new-group").addEventListener("click", openGroupDialog);
  $("group-close").addEventListener("click", () => $("group-dialog").close());
  $("group-create").addEventListener("click", createGroup);
  $("back").addEventListener("click", () => {
    $("app").dataset.view = "list";
    $("search").focus();
  });
  for (const id of ["conv-status", "conv-priority"]) $(id).addEventListener("change", saveMeta);
  $("conv-tags").addEventListener("change", saveMeta);
  $("conv-meta").addEventListener("submit", (e) => {
    e.preventDefault();
    saveMeta();
  });
}

export function reloadTab() {
  const run = state.tab === "conversations" ? loadConversations() : loadCustomers();
  run.catch(() => {});
  if (state.tab === "conversations") searchMessages().catch(() => {});
}

// Message text search (GET /api/messages/search) under the conversation
// list; the matches come as character ranges and are marked with <mark>
// elements, never by putting the user's text into HTML.
export async function searchMessages() {
  const q = $("search").value.trim();
  const box = $("message-results-box");
  if (!q) {
    box.hidden = true;
    return;
  }
  const r = await api("GET", `/api/messages/search?${new URLSearchParams({ q, limit: "20" })}`);
  if ($("search").value.trim() !== q) return; // typed on meanwhile
  $("message-results").replaceChildren(
    ...r.results.map((hit) => {
      const text = [...hit.snippet];
      const parts = [];
      let at = 0;
      for (const h of hit.highlights) {
        if (h.start > at) parts.push(text.slice(at, h.start).join(""));
        parts.push(el("mark", { text: text.slice(h.start, h.end).join("") }));
        at = h.end;
      }
      if (at < text.length) parts.push(text.slice(at).join(""));
      return el(
        "li",
        {},
        el(
          "button",
          { type: "button", class: "item hit", onclick: () => openConversation(hit.conversationId) },
          el("span", { class: "name", text: hit.conversationName }),
          el("span", { class: "time", text: when(hit.message.timestamp) }),
          el("span", { class: "preview" }, ...parts),
        ),
      );
    }),
  );
  box.hidden = false;
  $("message-results-title").textContent = r.results.length ? "Messages" : "No messages match";
}

export function query(cursor) {
  const p = new URLSearchParams();
  const q = $("search").value.trim();
  if (q) p.set("q", q);
  if (cursor) p.set("cursor", cursor);
  const s = p.toString();
  return s ? `?${s}` : "";
}

// Each load of the list is numbered; only the newest one's answer is shown.
// Switching the filter twice quickly (archived, then active) sends two
// requests, and the first one's answer could arrive last and show the
// archived list under "Active".
let listLoads = 0;

export async function loadConversations({ more = false } = {}) {
  if (!state.owner) return;
  const mine = ++listLoads;
  let r;
  try {
    const q = query(more ? state.convCursor : null);
    const p = new URLSearchParams(q.slice(1));
    const filter = $("conv-filter").value;
    if (filter !== "all") p.set("filter", filter);
    const assigned = $("assigned-filter").value;
    if (assigned !== "all" && !$("assigned-filter-row").hidden) p.set("assigned", assigned);
    const s = p.toString();
    r = await api("GET", `/api/messages/conversations${s ? `?${s}` : ""}`);
  } catch (e) {
    if (mine !== listLoads) return; // a newer load has taken over
    showError($("list-error"), `Conversations could not be loaded: ${e.message}`);
    throw e;
  }
  if (mine !== listLoads) return;
  showError($("list-error"), "");
  if (!more) {
    state.conversations = new Map();
    state.convOrder = [];
  }
  for (const c of r.conversations) {
    if (state.open?.id === c.id) c.unreadCount = 0; // being read right now
    state.conversations.set(c.id, c);
    state.convOrder.push(c.id);
  }
  state.convCursor = r.nextCursor;
  if (r.counts) {
    for (const o of $("conv-filter").options) {
      const n = r.counts[o.value];
      o.textContent = `${o.value[0].toUpperCase()}${o.value.slice(1)}${n === undefined ? "" : ` (${n})`}`;
    }
    for (const o of $("assigned-filter").options) {
      const n = r.counts.assigned?.[o.value];
      o.textContent = `${o.value[0].toUpperCase()}${o.value.slice(1)}${n === undefined ? "" : ` (${n})`}`;
    }
  }
  renderConversations();
}

export function renderConversations() {
  const list = $("conversation-list");
  list.replaceChildren(
    ...state.convOrder.map((id) => {
      const c = state.conversations.get(id);
      const current = state.open?.id === id;
      const chips = [];
      if (c.type === "group") chips.push(el("span", { class: "chip group", text: `group of ${c.members?.length || 0}` }));
      if (c.status !== "active") chips.push(el("span", { class: "chip", text: c.status }));
      if (c.priority !== "normal") chips.push(el("span", { class: `chip ${c.priority}`, text: c.priority }));
      for (const t of c.tags || []) chips.push(el("span", { class: "chip", text: `#${t}` }));
      if (c.assignee && (state.team?.members.size || 0) > 1) {
        const who = c.assignee === state.me.id ? "you" : state.team.members.get(c.assignee)?.name || "someone";
        chips.push(el("span", { class: "chip assignee", text: `→ ${who}` }));
      }
      const label = `${c.name}${c.isOnline ? ", online" : ""}${c.unreadCount ? `, ${c.unreadCount} unread` : ""}`;
      return el(
        "li",
        { "data-conversation": id },
        el(
          "button",
          { type: "button", class: "item", "aria-current": current ? "true" : null, "aria-label": label, onclick: () => openConversation(id) },
          el("span", { class: `dot${c.isOnline ? " online" : ""}`, "aria-hidden": "true" }),
          el("span", { class: "name", text: c.name }),
          c.unreadCount
            ? el("span", { class: "badge", "data-unread": String(c.unreadCount), text: String(c.unreadCount) })
            : el("span", { class: "time", text: when(c.lastMessageTime) }),
          el("span", { class: "preview", text: c.lastMessage || "No messages yet" }),
          chips.length ? el("span", { class: "tagline" }, ...chips) : null,
        ),
      );
    }),
  );
  $("conversations-empty").hidden = state.convOrder.length > 0;
  $("conversations-more").hidden = !state.convCursor;
  const total = [...state.conversations.values()].reduce((n, c) => n + (c.unreadCount || 0), 0);
  $("total-unread").hidden = total === 0;
  $("total-unread").textContent = String(total);
  $("total-unread").setAttribute("aria-label", `${total} unread`);
}

export async function loadCustomers({ more = false } = {}) {
  let r;
  try {
    r = await api("GET", `/api/messages/customers${query(more ? state.customerCursor : null)}`);
  } catch (e) {
    showError($("list-error"), `Customers could not be loaded: ${e.message}`);
    throw e;
  }
  showError($("list-error"), "");
  state.customers = more ? state.customers.concat(r.customers) : r.customers;
  state.customerCursor = r.nextCursor;
  const list = $("customer-list");
  list.replaceChildren(
    ...state.customers.map((c) => {
      const stats = [
        `${c.totalOrders} orders`,
        `${money.format(c.totalSpent)} spent`,
        `last login ${c.lastLogin ? when(c.lastLogin) : "never"}`,
        `joined ${when(c.joinedDate)}`,
      ].join(" · ");
      const action = c.hasConversation
        ? `Open chat${c.unreadCount ? ` (${c.unreadCount} unread)` : ""}`
        : "Start conversation";
      return el(
        "li",
        { class: "customer-row", "data-customer": c.id },
        el("span", { class: "name" }, el("span", { class: `dot${c.isOnline ? " online" : ""}`, "aria-hidden": "true" }), " ", c.name,
          el("span", { class: "visually-hidden", text: c.isOnline ? ", online" : "" })),
        el("button", { type: "button", "aria-label": `${action} with ${c.name}`, onclick: () => startConversation(c) , text: action }),
        el("span", { class: "stats", text: `${c.email}${c.phone ? ` · ${c.phone}` : ""}` }),
        el("span", { class: "stats", text: stats }),
      );
    }),
  );
  $("customers-empty").hidden = state.customers.length > 0;
  $("customers-more").hidden = !state.customerCursor;
}

export async function startConversation(c) {
  try {
    const r = await api("POST", "/api/messages/conversations", {
      customerId: c.id,
      customerName: c.name,
      customerEmail: c.email,
      customerPhone: c.phone || undefined,
    });
    const conv = r.conversation;
    if (!state.conversations.has(conv.id)) {
      state.conversations.set(conv.id, conv);
      state.convOrder.unshift(conv.id);
    }
    await openConversation(conv.id);
    $("compose").focus();
  } catch (e) {
    showError($("list-error"), `Could not start the conversation: ${e.message}`);
  }
}

export async function saveMeta() {
  const o = state.open;
  if (!o?.id || !state.owner) return;
  const tags = $("conv-tags").value.split(",").map((t) => t.trim()).filter(Boolean);
  try {
    const r = await api("PATCH", `/api/messages/conversations/${o.id}`, {
      status: $("conv-status").value,
      priority: $("conv-priority").value,
      tags,
    });
    onConversationUpdated(r.conversation);
    showError($("chat-error"), "");
  } catch (e) {
    showError($("chat-error"), `Could not save: ${e.message}`);
  }
}

// A new group: a title and some of the loaded customers (POST /api/groups).
function openGroupDialog() {
  $("group-name").value = "";
  showError($("group-error"), "");
  $("group-people").replaceChildren(
    ...state.customers.map((c) =>
      el("li", {}, el("label", {}, el("input", { type: "checkbox", value: c.id }), ` ${c.name}`)),
    ),
  );
  $("group-dialog").showModal();
  $("group-name").focus();
}

async function createGroup() {
  const customerIds = [...$("group-people").querySelectorAll("input:checked")].map((i) => i.value);
  try {
    const r = await api("POST", "/api/groups", { title: $("group-name").value, customerIds });
    $("group-dialog").close();
    await loadConversations();
    await openConversation(r.conversation.id);
  } catch (e) {
    showError($("group-error"), `Could not create the group: ${e.message}`);
  }
}

// Who the open conversation is assigned to (PUT …/assignee): the team hears it.
export async function assignOpen() {
  const o = state.open;
  if (!o?.id) return;
  const assignee = $("conv-assignee").value || null;
  try {
    const r = await api("PUT", `/api/messages/conversations/${o.id}/assignee`, { assignee });
    onAssigned({ conversationId: o.id, assignee: r.conversation.assignee || null });
    showError($("chat-error"), "");
  } catch (e) {
    fillAssignee(o.conv);
    showError($("chat-error"), `Could not assign: ${e.message}`);
  }
}

// `conversation_assigned`: the list's chip, the open conversation's choice.
export function onAssigned(p) {
  const known = state.conversations.get(p.conversationId);
  if (known) {
    known.assignee = p.assignee || undefined;
    renderConversations();
  }
  if (state.open?.id === p.conversationId && state.open.conv) {
    state.open.conv.assignee = p.assignee || undefined;
    fillAssignee(state.open.conv);
  }
}

export function fillAssignee(c) {
  const members = [...(state.team?.members.values() || [])];
  const options = [el("option", { value: "", text: "nobody" })].concat(
    members.map((m) => el("option", { value: m.userId, text: m.userId === state.me.id ? `${m.name} (you)` : m.name })),
  );
  $("conv-assignee").replaceChildren(...options);
  $("conv-assignee").value = c?.assignee || "";
}

export function onConversationUpdated(c) {
  if (!c?.id) return;
  const known = state.conversations.get(c.id);
  if (known) {
    Object.assign(known, { status: c.status, priority: c.priority, tags: c.tags, archived: c.archived });
    renderConversations();
  }
  if (state.open?.id === c.id) {
    if (state.owner) fillMeta(c);
    showArchived(c.archived);
  }
}

export function fillMeta(c) {
  // A field being edited keeps what the user is typing.
  const set = (id, v) => {
    if (document.activeElement !== $(id)) $(id).value = v;
  };
  set("conv-status", c.status);
  set("conv-priority", c.priority);
  set("conv-tags", (c.tags || []).join(", "));
  fillAssignee(c);
}

// The chat header's archive button, for the conversation open now (each side archives for itself).
export function showArchived(archived) {
  const b = $("archive");
  b.hidden = !state.open?.id;
  b.textContent = archived ? "Unarchive" : "Archive";
  b.dataset.archived = archived ? "true" : "false";
}

export async function toggleArchived() {
  const id = state.open?.id;
  if (!id) return;
  const archive = $("archive").dataset.archived !== "true";
  try {
    const r = await api("POST", `/api/messages/conversations/${id}/${archive ? "archive" : "unarchive"}`);
    onConversationUpdated(r.conversation);
    if (state.owner) await loadConversations();
  } catch (e) {
    showError($("chat-error"), `Could not ${archive ? "archive" : "unarchive"}: ${e.message}`);
  }
}
