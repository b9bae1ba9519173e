-- Patch status answers are cached in each replica's memory (portals poll them all day). A cached
-- answer is good until one of its inputs changes, so every write of an input tells every replica
-- which machines it touched: `NOTIFY hotpatch_status` with their ids, comma-separated (up to 200 per
-- notification, within PostgreSQL's 8,000-byte payload), or `*` for "everything" when a statement
-- wrote more rows than is worth listing, or wrote what every answer depends on (the catalog and
-- maintenance counters of `status_epoch`, a rollout's state). Notifications are sent at commit, in
-- commit order, and only for committed transactions. A replica that loses its LISTEN connection
-- drops its whole cache and stops caching until it listens again (see `wakeup`).
--
-- Statement-level triggers with transition tables: a statement touching 1,000 rows costs one
-- aggregate, not 1,000 notifications.

create function status_notify_ids(ids uuid[]) returns void language plpgsql as $$
declare
    n integer := coalesce(array_length(ids, 1), 0);
    i integer := 1;
begin
    if n = 0 then
        return;
    end if;
    -- A rollout created over 100,000 machines, a fleet-wide import: one "everything".
    if n > 2000 then
        perform pg_notify('hotpatch_status', '*');
        return;
    end if;
    while i <= n loop
        perform pg_notify('hotpatch_status', array_to_string(ids[i:i + 199], ','));
        i := i + 200;
    end loop;
end $$;

-- The machine's own row: `id`.
create function status_notify_machine() returns trigger language plpgsql as $$
begin
    perform status_notify_ids(array(select distinct id from changed));
    return null;
end $$;

-- Rows of one machine: `machine_id`.
create function status_notify_machine_rows() returns trigger language plpgsql as $$
begin
    perform status_notify_ids(array(select distinct machine_id from changed));
    return null;
end $$;

create function status_notify_everything() returns trigger language plpgsql as $$
begin
    perform pg_notify('hotpatch_status', '*');
    return null;
end $$;

-- A new machine changes no cached answer: only updates and deletes of `machine` count.
create trigger status_notify_update after update on machine
    referencing new table as changed for each statement execute function status_notify_machine();
create trigger status_notify_delete after delete on machine
    referencing old table as changed for each statement execute function status_notify_machine();

-- A trigger with transition tables serves one event, hence three per table.
create trigger status_notify_insert after insert on machine_patch_state
    referencing new table as changed for each statement execute function status_notify_machine_rows();
create trigger status_notify_update after update on machine_patch_state
    referencing new table as changed for each statement execute function status_notify_machine_rows();
create trigger status_notify_delete after delete on machine_patch_state
    referencing old table as changed for each statement execute function status_notify_machine_rows();

create trigger status_notify_insert after insert on machine_inventory
    referencing new table as changed for each statement execute function status_notify_machine_rows();
create trigger status_notify_update after update on machine_inventory
    referencing new table as changed for each statement execute function status_notify_machine_rows();
create trigger status_notify_delete after delete on machine_inventory
    referencing old table as changed for each statement execute function status_notify_machine_rows();

create trigger status_notify_insert after insert on machine_agent
    referencing new table as changed for each statement execute function status_notify_machine_rows();
create trigger status_notify_update after update on machine_agent
    referencing new table as changed for each statement execute function status_notify_machine_rows();
create trigger status_notify_delete after delete on machine_agent
    referencing old table as changed for each statement execute function status_notify_machine_rows();

create trigger status_notify_insert after insert on rollout_machine
    referencing new table as changed for each statement execute function status_notify_machine_rows();
create trigger status_notify_update after update on rollout_machine
    referencing new table as changed for each statement execute function status_notify_machine_rows();
create trigger status_notify_delete after delete on rollout_machine
    referencing old table as changed for each statement execute function status_notify_machine_rows();

-- What every answer depends on. Row level, and only for real changes: the dispatcher's updates
-- that change no rollout's state must not drop every replica's answers each second (a
-- statement-level trigger fires for statements that change no row). One transaction's identical
-- notifications are delivered once.
create trigger status_notify_rollout_state after update of state on rollout
    for each row when (old.state is distinct from new.state) execute function status_notify_everything();
create trigger status_notify_rollout_delete after delete on rollout
    for each row execute function status_notify_everything();
create trigger status_notify_epoch after update on status_epoch
    for each row execute function status_notify_everything();
