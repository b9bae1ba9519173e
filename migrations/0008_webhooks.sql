-- Webhooks: operators subscribe a URL to event types of the change feed (table `event`); every
-- matching event becomes a delivery, POSTed signed (HMAC-SHA256 over timestamp + body) by one of
-- the replicas and retried with exponential backoff and jitter until it succeeds or runs out of
-- attempts. Deliveries are a queue like the agents' jobs (claimed with FOR UPDATE SKIP LOCKED under
-- a lease, requeued by the same retry policy) in a table of their own: a job belongs to a machine
-- and its agent, a delivery to a webhook.

create table webhook (
    id           uuid primary key,
    url          text not null check (url ~ '^https?://' and length(url) <= 2048),
    event_types  text[] not null check (cardinality(event_types) >= 1),
    -- The HMAC key, shown once at creation. Kept readable: the service signs with it.
    secret       text not null,
    description  text check (length(description) <= 500),
    created_by   uuid,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);

create table webhook_delivery (
    id               uuid primary key,
    webhook_id       uuid not null references webhook (id) on delete cascade,
    event_id         bigint not null,
    event_type       text not null,
    -- The body sent, fixed at fan-out: a retry sends the same bytes (with a new timestamp).
    body             jsonb not null,
    -- queued → delivering (claimed, leased) → succeeded | failed; delivering → queued on a
    -- failure with attempts left or an expired lease.
    state            text not null default 'queued'
        check (state in ('queued', 'delivering', 'succeeded', 'failed')),
    attempt          integer not null default 0 check (attempt >= 0),
    max_attempts     integer not null check (max_attempts >= 1),
    run_after        timestamptz not null,
    lease_expires_at timestamptz,
    -- The last attempt: the receiver's HTTP status (null: no answer) and what went wrong.
    last_status      integer,
    last_error       text,
    created_at       timestamptz not null,
    updated_at       timestamptz not null,
    finished_at      timestamptz,
    unique (webhook_id, event_id),
    check ((state = 'delivering') = (lease_expires_at is not null))
);

create index webhook_delivery_due_idx on webhook_delivery (run_after) where state = 'queued';
create index webhook_delivery_leased_idx on webhook_delivery (lease_expires_at) where state = 'delivering';
create index webhook_delivery_log_idx on webhook_delivery (webhook_id, created_at desc);

-- How far fan-out has read the change feed (one row). Starts at the feed's end: a new installation
-- (or one upgraded to webhooks) does not replay old events.
create table webhook_cursor (
    singleton   boolean primary key default true check (singleton),
    last_event_id bigint not null
);
insert into webhook_cursor (last_event_id) select coalesce(max(id), 0) from event;
