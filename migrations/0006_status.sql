-- Patch status at fleet scale (portals poll it): what a cheap "has this machine's answer changed?"
-- check reads. A machine's own rows are versioned by PostgreSQL itself (`xmin`, the transaction that
-- wrote the row version a reader sees); what every machine's answer depends on (the release catalog
-- and the maintenance configurations) is versioned here, by counters that statement triggers bump.
-- One row, so the check is one more primary-key lookup, and the writers are rare (publishing a
-- release, editing a configuration): the row lock they take costs nothing on the hot paths.
create table status_epoch (
    -- Always true: the table holds exactly one row.
    id                  boolean primary key default true check (id),
    -- Bumped by every statement that writes `release`.
    catalog_version     bigint not null default 0,
    -- Bumped by every statement that writes `maintenance_configuration`.
    maintenance_version bigint not null default 0,
    created_at          timestamptz not null default now(),
    updated_at          timestamptz not null default now()
);

insert into status_epoch default values;

create function status_epoch_catalog() returns trigger language plpgsql as $$
begin
    update status_epoch set catalog_version = catalog_version + 1, updated_at = now();
    return null;
end $$;

create function status_epoch_maintenance() returns trigger language plpgsql as $$
begin
    update status_epoch set maintenance_version = maintenance_version + 1, updated_at = now();
    return null;
end $$;

-- Statement level: a statement that writes many rows bumps once; truncate included.
create trigger status_epoch_catalog after insert or update or delete or truncate on release
    for each statement execute function status_epoch_catalog();
create trigger status_epoch_maintenance after insert or update or delete or truncate on maintenance_configuration
    for each statement execute function status_epoch_maintenance();
