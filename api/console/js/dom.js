// Small DOM and formatting helpers.

import { $ } from "./state.js";

export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "text") e.textContent = v;
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

export function showError(node, message) {
  node.textContent = message;
  node.hidden = !message;
}

export function randomId() {
  // crypto.randomUUID needs a secure context; getRandomValues does not.
  const b = crypto.getRandomValues(new Uint8Array(12));
  return "c-" + Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

export const timeFmt = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
export const dateFmt = new Intl.DateTimeFormat(undefined, { year: "numeric", month: "short", day: "numeric" });
export const money = new Intl.NumberFormat(undefined, { maximumFractionDigits: 2 });

export function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const today = new Date().toDateString() === d.toDateString();
  return today ? timeFmt.format(d) : dateFmt.format(d);
}

export function toast(text) {
  const t = el("div", { class: "toast", text });
  $("toasts").append(t);
  setTimeout(() => t.remove(), 5000);
}

export function debounce(fn, ms) {
  let t;
  return (...a) => {
    clearTimeout(t);
    t = setTimeout(() => fn(...a), ms);
  };
}
