-- Sessions of the web console: a browser signs in with an API token once and then carries a
-- random session id in a cookie. Kept here (not in a replica's memory) so any replica answers
-- the session's next request.
create table console_session (
    -- sha-256 of the cookie's random secret: a read of this table gives no usable cookie.
    id_hash      bytea primary key check (length(id_hash) = 32),
    -- The token signed in with. Revoking it deletes the row, and so ends its sessions.
    token_id     uuid not null references api_token (id) on delete cascade,
    -- The token's secret hash at sign-in: a bootstrap admin token whose secret was changed
    -- (HOTPATCH_ADMIN_TOKEN) keeps its row, and its old sessions end all the same.
    token_hash   bytea not null check (length(token_hash) = 32),
    -- Every form of the session carries this secret (CSRF); a post without it is refused.
    csrf         bytea not null check (length(csrf) = 32),
    -- Wall-clock expiry (PostgreSQL's now()): a session is a browser's, not the fleet's, so the
    -- movable service clock of tests and demos does not age it.
    expires_at   timestamptz not null,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);

-- Revocation deletes a token's sessions through the foreign key.
create index console_session_token on console_session (token_id);
