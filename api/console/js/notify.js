// Notifications: asks for permission after a click (never on load), registers
// the service worker and a Web Push subscription where the browser has them,
// shows a notification for messages that arrive while the tab is hidden, and
// edits the person's preferences (channels, preview, mute; a business's email
// delay and quiet hours).

import { api } from "./rest.js";
import { $, state } from "./state.js";
import { showError } from "./dom.js";

let prefs = null;

export function initNotifications() {
  $("notify-settings").hidden = false;
  $("notify-settings").onclick = () => openDialog().catch((e) => showError($("notify-error"), e.message));
  $("notify-enable").onclick = () => enable().catch((e) => status(`Could not turn them on: ${e.message}`));
  $("notify-save").onclick = () => save().catch((e) => showError($("notify-error"), e.message));
  $("notify-close").onclick = () => $("notify-dialog").close();
  loadPrefs().catch(() => {});
  // Already allowed on an earlier visit: keep this browser's subscription current.
  if ("Notification" in window && Notification.permission === "granted") subscribePush().catch(() => {});
}

async function loadPrefs() {
  prefs = (await api("GET", "/api/notifications/preferences")).preferences;
  return prefs;
}

function status(text) {
  $("notify-status").textContent = text;
}

function permissionText() {
  if (!("Notification" in window)) return "This browser shows no notifications.";
  return {
    granted: "Browser notifications are on.",
    denied: "Browser notifications are blocked for this site (change it in the browser's site settings).",
    default: "Browser notifications are off.",
  }[Notification.permission];
}

const minutes = (t) => (t ? Number(t.slice(0, 2)) * 60 + Number(t.slice(3, 5)) : null);
const clock = (m) => `${String(Math.floor(m / 60)).padStart(2, "0")}:${String(m % 60).padStart(2, "0")}`;

async function openDialog() {
  showError($("notify-error"), "");
  const p = await loadPrefs();
  $("pref-push").checked = p.push;
  $("pref-email").checked = p.email;
  $("pref-preview").value = p.preview;
  const open = state.open?.id;
  $("pref-mute-row").hidden = !open;
  $("pref-mute").checked = Boolean(open && p.muted.includes(open));
  $("pref-business").hidden = !state.owner;
  if (state.owner) {
    $("pref-delay").value = p.emailDelaySecs ? Math.round(p.emailDelaySecs / 60) : "";
    $("pref-quiet-start").value = p.quietHours ? clock(p.quietHours.startMinute) : "";
    $("pref-quiet-end").value = p.quietHours ? clock(p.quietHours.endMinute) : "";
  }
  $("notify-enable").hidden = !("Notification" in window) || Notification.permission !== "default";
  status(permissionText());
  $("notify-dialog").showModal();
  if ("Notification" in window && Notification.permission === "granted") {
    const push = await subscribePush().catch((e) => `Push: ${e.message}`);
    status(`${permissionText()} ${push}`);
  }
}

async function enable() {
  const permission = await Notification.requestPermission();
  $("notify-enable").hidden = permission !== "default";
  if (permission !== "granted") return status(permissionText());
  status(`${permissionText()} ${await subscribePush()}`);
}

// Registers this browser for Web Push; says how it went.
export async function subscribePush() {
  if (!("serviceWorker" in navigator) || !("PushManager" in window)) {
    return "This browser has no Web Push: notifications show while this page is open.";
  }
  let key;
  try {
    key = (await api("GET", "/api/notifications/push-key")).publicKey;
  } catch (e) {
    if (e.status === 501) return "This server sends no Web Push: notifications show while this page is open.";
    throw e;
  }
  const reg = await navigator.serviceWorker.register("/console/sw.js", { scope: "/console/" });
  let sub = await reg.pushManager.getSubscription();
  if (sub && b64(sub.options.applicationServerKey) !== key) {
    await sub.unsubscribe(); // the server's key changed: subscribe again
    sub = null;
  }
  try {
    sub ||= await reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: bytes(key) });
  } catch (e) {
    return `The browser's push service is not reachable (${e.message}): notifications show while this page is open.`;
  }
  await api("POST", "/api/notifications/subscriptions", sub.toJSON());
  return "Push is on for this browser, also when the page is closed.";
}

async function save() {
  const open = state.open?.id;
  const muted = new Set(prefs.muted);
  if (open) $("pref-mute").checked ? muted.add(open) : muted.delete(open);
  const body = {
    push: $("pref-push").checked,
    email: $("pref-email").checked,
    preview: $("pref-preview").value,
    muted: [...muted],
  };
  if (state.owner) {
    const delay = Number($("pref-delay").value);
    if (delay > 0) body.emailDelaySecs = Math.round(delay * 60);
    const [start, end] = [minutes($("pref-quiet-start").value), minutes($("pref-quiet-end").value)];
    if (start !== null && end !== null) {
      body.quietHours = { startMinute: start, endMinute: end, utcOffsetMinutes: -new Date().getTimezoneOffset() };
    }
  } else {
    body.emailDelaySecs = null;
    body.quietHours = null;
  }
  prefs = (await api("PUT", "/api/notifications/preferences", body)).preferences;
  status("Saved.");
  $("notify-dialog").close();
}

// A message that arrived while this tab is hidden: a notification, as the
// person chose (nothing for a muted conversation; no text without preview).
export function notifyHidden(n) {
  if (document.visibilityState === "visible") return false;
  if (!("Notification" in window) || Notification.permission !== "granted") return false;
  if (prefs && (!prefs.push || prefs.muted.includes(n.conversationId))) return false;
  const body = prefs?.preview === "none" ? "New message" : n.preview || "";
  const note = new Notification(n.from || "New message", { body, tag: `conversation-${n.conversationId}` });
  note.onclick = () => {
    window.focus();
    note.close();
  };
  return true;
}

function bytes(b64url) {
  const s = atob(b64url.replace(/-/g, "+").replace(/_/g, "/"));
  return Uint8Array.from(s, (c) => c.charCodeAt(0));
}

function b64(buffer) {
  if (!buffer) return "";
  const s = String.fromCharCode(...new Uint8Array(buffer));
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
