// The dashboard's JSON API, with the key the gateway asks for (kept for this tab only, sent as a
// Bearer header, never in a URL).

const KEY = "dragoman.dashboard.key";

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

export const key = {
  get: () => sessionStorage.getItem(KEY),
  set: (value) => sessionStorage.setItem(KEY, value),
  clear: () => sessionStorage.removeItem(KEY),
};

export async function call(name, params = {}) {
  const query = new URLSearchParams(Object.entries(params).filter(([, v]) => v !== undefined && v !== null));
  const headers = { accept: "application/json" };
  const stored = key.get();
  if (stored) headers.authorization = "Bearer " + stored;
  let response;
  try {
    const search = query.toString();
    response = await fetch(`api/${name}${search ? "?" + search : ""}`, { headers, cache: "no-store" });
  } catch (err) {
    throw new ApiError(0, "the gateway cannot be reached");
  }
  let body = null;
  try {
    body = await response.json();
  } catch (err) {
    body = null;
  }
  if (!response.ok) {
    const message = body && body.error && body.error.message ? body.error.message : `HTTP ${response.status}`;
    throw new ApiError(response.status, message);
  }
  return body;
}
