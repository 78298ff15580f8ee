// The REST client: every call with the page's token, errors as `ApiError`.

import { state } from "./state.js";

export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${state.token}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let res;
  try {
    res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new ApiError(`The server could not be reached (${e.message}).`, 0, "NETWORK");
  }
  let data = null;
  try {
    data = await res.json();
  } catch {
    /* not JSON */
  }
  if (!res.ok || !data || data.success === false) {
    const msg = data?.message || `${res.status} ${res.statusText}`;
    throw new ApiError(msg, res.status, data?.code);
  }
  return data;
}
