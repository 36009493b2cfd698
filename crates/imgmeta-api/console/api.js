// The API client: same-origin fetches with the session cookie, the CSRF header on every
// state-changing request, and the error envelope turned into an ApiError.

/** An answer that was not 2xx: its status and the envelope's code and message. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const session = { user: null, csrf: null };

/** The logged-in user (`{id, email, account_id, created_at}`), or null. */
export function currentUser() {
  return session.user;
}

function remember(answer) {
  session.user = answer ? answer.user : null;
  session.csrf = answer ? answer.csrf_token : null;
}

const SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

/** Called with the ApiError when a request finds the session gone (401). */
let onUnauthorized = () => {};
export function setUnauthorizedHandler(handler) {
  onUnauthorized = handler;
}

/**
 * `request('POST', '/v1/jobs', {json: {...}})`: the parsed JSON answer (null for 204), or an
 * ApiError. `body` sends a ready body (FormData, Blob) instead of JSON.
 */
export async function request(method, path, { json, body, headers, quiet401 = false } = {}) {
  const sent = new Headers(headers || {});
  sent.set('Accept', 'application/json');
  if (!SAFE_METHODS.has(method) && session.csrf) sent.set('X-CSRF-Token', session.csrf);
  if (json !== undefined) {
    sent.set('Content-Type', 'application/json');
    body = JSON.stringify(json);
  }
  let response;
  try {
    response = await fetch(path, { method, headers: sent, body, credentials: 'same-origin', cache: 'no-store' });
  } catch (e) {
    throw new ApiError(0, 'network_error', `the service could not be reached (${e.message})`);
  }
  if (response.status === 204 || response.status === 304) return null;
  const text = await response.text();
  let value = null;
  try {
    value = text ? JSON.parse(text) : null;
  } catch {
    value = null;
  }
  if (response.ok) return value;
  const envelope = value && value.error ? value.error : null;
  const error = new ApiError(
    response.status,
    envelope ? String(envelope.code) : `http_${response.status}`,
    envelope ? String(envelope.message) : `the service answered ${response.status}`,
  );
  const retry = response.headers.get('Retry-After');
  if (retry) error.retryAfter = retry;
  if (response.status === 401 && !quiet401 && session.user) {
    remember(null);
    onUnauthorized(error);
  }
  throw error;
}

/** Reads the current session; true when logged in. */
export async function loadSession() {
  try {
    remember(await request('GET', '/v1/session', { quiet401: true }));
    return true;
  } catch (e) {
    if (e.status === 401) {
      remember(null);
      return false;
    }
    throw e;
  }
}

export async function signUp(email, password, accountName) {
  const body = { email, password };
  if (accountName) body.account_name = accountName;
  remember(await request('POST', '/v1/signup', { json: body, quiet401: true }));
}

export async function logIn(email, password) {
  remember(await request('POST', '/v1/session', { json: { email, password }, quiet401: true }));
}

export async function logOut() {
  try {
    await request('DELETE', '/v1/session', { quiet401: true });
  } finally {
    remember(null);
  }
}

export async function changePassword(currentPassword, newPassword) {
  await request('POST', '/v1/session/password', {
    json: { current_password: currentPassword, new_password: newPassword },
  });
}

/** A same-origin API path, or null: links built from answers never leave the service. */
export function apiPath(url) {
  return typeof url === 'string' && url.startsWith('/v1/') && !url.startsWith('//') ? url : null;
}
