-- Calendar feeds: a read-only URL with a secret in it, for calendar apps that cannot send a
-- bearer token. A feed serves one machine's or one maintenance configuration's windows as
-- iCalendar, exactly what the bearer endpoint serves; deleting the row revokes the URL.
create table calendar_feed (
    id               uuid primary key,
    -- sha-256 of the URL's random secret: a read of this table gives no usable URL.
    secret_hash      bytea not null unique check (length(secret_hash) = 32),
    -- The token that made it. Revoking that token revokes its feeds: a feed only lends what its
    -- maker could read.
    token_id         uuid not null references api_token (id) on delete cascade,
    -- Exactly one of the two: the feed of a machine, or of a configuration. Deleting either
    -- deletes the feed (its URL then answers 404, as a revoked one does).
    machine_id       uuid references machine (id) on delete cascade,
    configuration_id uuid references maintenance_configuration (id) on delete cascade,
    created_at       timestamptz not null default now(),
    updated_at       timestamptz not null default now(),
    constraint calendar_feed_one_subject check ((machine_id is null) <> (configuration_id is null))
);

-- "My feeds" lists by maker; the cascades find a machine's or a configuration's feeds.
create index calendar_feed_token on calendar_feed (token_id);
create index calendar_feed_machine on calendar_feed (machine_id) where machine_id is not null;
create index calendar_feed_configuration on calendar_feed (configuration_id) where configuration_id is not null;
