-- Sign-up and sessions: users (people with an e-mail address and a password, each a member of
-- one account), their login sessions, and the failed logins that throttle password guessing.

-- Every user owns one hidden "session key" in its account, holding every scope: a request made
-- with the user's session is authenticated as that key, so the rate limit, the daily quotas and
-- every handler's tenancy checks apply to it exactly as to an API key. Nobody ever sees its
-- secret (it is thrown away when the key is made); it is left out of key lists, cannot be
-- revoked through the API and is never accepted as a Bearer key.
ALTER TABLE api_keys
    ADD COLUMN kind text NOT NULL DEFAULT 'api' CHECK (kind IN ('api', 'session'));

CREATE TABLE users (
    id                   uuid        PRIMARY KEY,
    account_id           uuid        NOT NULL REFERENCES accounts (id),
    -- Trimmed and lower-cased before it is stored, so addresses differing in case are one.
    email                text        NOT NULL UNIQUE CHECK (length(email) BETWEEN 3 AND 254),
    -- An argon2id PHC string; the password itself is never stored.
    password_hash        text        NOT NULL CHECK (password_hash LIKE '$argon2id$%'),
    session_key_id       bigint      NOT NULL UNIQUE REFERENCES api_keys (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    -- E-mail verification hook. No mail can be sent from this service, so verification is out
    -- of scope and this stays NULL; a verification flow would set it when the user follows a
    -- link, and sign-in or sign-up could then require it. Nothing reads it yet.
    email_verified_at    timestamptz
);
CREATE INDEX users_by_account ON users (account_id);

-- Login sessions. Only the SHA-256 of the cookie's random token is kept. A session ends when
-- unused for the idle period (`idle_expires_at`, moved forward as it is used, never past
-- `expires_at`) or at `expires_at`, whichever comes first: so `idle_expires_at` alone says
-- whether a session is alive. Ended sessions are deleted when presented and by a sweep.
CREATE TABLE sessions (
    token_hash       bytea       PRIMARY KEY CHECK (length(token_hash) = 32),
    user_id          uuid        NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at       timestamptz NOT NULL DEFAULT now(),
    idle_expires_at  timestamptz NOT NULL,
    expires_at       timestamptz NOT NULL,
    CHECK (idle_expires_at <= expires_at)
);
CREATE INDEX sessions_by_user ON sessions (user_id);
CREATE INDEX sessions_by_expiry ON sessions (idle_expires_at);

-- Login attempts counted against the throttle, shared by every API process. `subject` is the
-- SHA-256 of what is throttled ("account:" and the e-mail address, or "address:" and the
-- client's address), so neither addresses typed by strangers nor client IPs are kept in clear.
-- An attempt is written before its password is checked and deleted when it succeeds, so
-- attempts in flight count as failures (concurrent guesses cannot slip past the limit).
CREATE TABLE login_failures (
    id       bigserial   PRIMARY KEY,
    subject  bytea       NOT NULL CHECK (length(subject) = 32),
    at       timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX login_failures_by_subject ON login_failures (subject, at DESC);
CREATE INDEX login_failures_by_age ON login_failures (at);
