-- The change feed (GET /v1/events, Server-Sent Events): what happened, in the order it became
-- visible, kept for a few days so a client that reconnects with `Last-Event-ID` gets what it missed.
-- Events are written by triggers on the tables whose changes define them, so every write path (the
-- API, the dispatcher, the maintenance tick, a person with psql) produces them, and sent to every
-- replica with NOTIFY.
--
-- Ordering: a reader resumes "after id N", so ids must be handed out in commit order, or an event
-- with a smaller id committing late would fall behind a reader's cursor and never be seen. Every
-- event is therefore written at commit time (deferred constraint triggers) under one advisory lock
-- taken just before its id: the lock is held until the commit is visible, so the next writer's ids
-- are larger and land later. The lock costs what the NOTIFY sent with the events costs anyway
-- (PostgreSQL serializes the commits of notifying transactions), and only transactions that
-- produce events take either: claims, heartbeats and liveness flushes pass `when` guards evaluated
-- without calling a function.

create table event (
    -- The SSE `id`: increasing in commit order (see above). Gaps are possible (a commit that
    -- failed after taking ids), duplicates and reordering are not.
    id           bigserial primary key,
    type         text not null check (type in (
        'machine.status_changed', 'operation.finished', 'rollout.progressed', 'rollout.halted',
        'agent.connected', 'agent.lost')),
    -- What it is about. No foreign keys: events outlive what they describe (a deleted machine's
    -- last events stay readable until retention), and a key check per event is a cost for nothing.
    machine_id   uuid,
    operation_id uuid,
    rollout_id   uuid,
    -- The fields of the event as clients see them (`at` included: the instant of the change as the
    -- service recorded it).
    data         jsonb not null default '{}'::jsonb,
    -- Database time of the write: what retention goes by.
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now()
);

-- Retention deletes by age.
create index event_created_at_idx on event (created_at);
-- One status event per machine and transaction (an assessment writes inventory, patch state and
-- liveness together): the writer looks for its own earlier one.
create index event_machine_idx on event (machine_id, id) where machine_id is not null;
-- One `operation.finished` per operation.
create index event_operation_finished_idx on event (operation_id) where type = 'operation.finished';

-- "Lost" is reported once per silence: the maintenance tick sets this when it reports the agent
-- lost; the silence is over (and may be reported again) once `last_seen_at` passes it. Not indexed:
-- liveness flushes rewrite `last_seen_at` all day and must stay HOT updates.
alter table machine_agent add column lost_reported_at timestamptz;

-- An instant as the API writes it: RFC 3339 in UTC with a `Z`, fraction only when there is one.
create function event_instant(t timestamptz) returns jsonb language sql immutable as $$
    select to_jsonb(to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || coalesce('.' || nullif(rtrim(to_char(t at time zone 'UTC', 'US'), '0'), ''), '') || 'Z')
$$;

-- Appends an event. Only for the deferred triggers below (it relies on running at commit).
create function event_emit(p_type text, p_machine uuid, p_operation uuid, p_rollout uuid, p_data jsonb)
returns void language plpgsql as $$
begin
    -- Ids in commit order: see the top of this file. Re-entrant within a transaction.
    perform pg_advisory_xact_lock(7526466098475614208); -- 0x6873_7470_6576_7400 ("hstpevt")
    insert into event (type, machine_id, operation_id, rollout_id, data)
    values (p_type, p_machine, p_operation, p_rollout, p_data);
end $$;

-- A machine's status as a portal shows it changed: at most one event per machine and transaction.
create function event_machine_status() returns trigger language plpgsql as $$
declare
    change text := tg_argv[0];
    -- The column holding the instant of the change (the trigger's table has it).
    at_column text := tg_argv[1];
begin
    -- Its own transaction's events only: no lock needed to look.
    if not exists (select 1 from event
                   where machine_id = new.machine_id and type = 'machine.status_changed'
                     and xmin = pg_current_xact_id()::xid) then
        perform event_emit('machine.status_changed', new.machine_id, null, null,
            jsonb_build_object('machine_id', new.machine_id, 'change', change,
                               'at', event_instant(coalesce((to_jsonb(new) ->> at_column)::timestamptz, now()))));
    end if;
    return null;
end $$;

create constraint trigger event_inventory after insert or update on machine_inventory
    deferrable initially deferred
    for each row execute function event_machine_status('inventory', 'assessed_at');

create constraint trigger event_patch_state_insert after insert on machine_patch_state
    deferrable initially deferred
    for each row execute function event_machine_status('patch_state', 'updated_at');

create constraint trigger event_patch_state_update after update on machine_patch_state
    deferrable initially deferred
    for each row when (
        new.current_baseline_id is distinct from old.current_baseline_id
        or new.latest_installed_id is distinct from old.latest_installed_id
        or new.reboot_pending is distinct from old.reboot_pending)
    execute function event_machine_status('patch_state', 'updated_at');

create constraint trigger event_health_insert after insert on machine_agent
    deferrable initially deferred
    for each row when (new.health_status is not null)
    execute function event_machine_status('health', 'health_reported_at');

create constraint trigger event_health_update after update of health_status on machine_agent
    deferrable initially deferred
    for each row when (new.health_status is distinct from old.health_status)
    execute function event_machine_status('health', 'health_reported_at');

-- Agent connected: seen again after two minutes of silence, after it was reported lost, or for the
-- first time. The `when` guards keep the liveness flush (one update of `last_seen_at` per agent and
-- second) free of the function call.
create function event_agent_connected() returns trigger language plpgsql as $$
begin
    perform event_emit('agent.connected', new.machine_id, null, null,
        jsonb_build_object('machine_id', new.machine_id, 'last_seen_at', event_instant(new.last_seen_at),
                           'at', event_instant(new.last_seen_at)));
    return null;
end $$;

create constraint trigger event_agent_connected_insert after insert on machine_agent
    deferrable initially deferred
    for each row when (new.last_seen_at is not null)
    execute function event_agent_connected();

create constraint trigger event_agent_connected_update after update of last_seen_at on machine_agent
    deferrable initially deferred
    for each row when (
        new.last_seen_at is not null
        and (old.last_seen_at is null
             or new.last_seen_at > old.last_seen_at + interval '2 minutes'
             or old.lost_reported_at >= old.last_seen_at))
    execute function event_agent_connected();

-- Agent lost: the maintenance tick marks it (agents::report_lost).
create function event_agent_lost() returns trigger language plpgsql as $$
begin
    perform event_emit('agent.lost', new.machine_id, null, null,
        jsonb_build_object('machine_id', new.machine_id, 'last_seen_at', event_instant(new.last_seen_at),
                           'at', event_instant(new.lost_reported_at)));
    return null;
end $$;

create constraint trigger event_agent_lost after update of lost_reported_at on machine_agent
    deferrable initially deferred
    for each row when (new.lost_reported_at is not null
                       and new.lost_reported_at is distinct from old.lost_reported_at)
    execute function event_agent_lost();

-- Operation finished: a job of an operation ended and none of its jobs is left queued or leased.
-- Checked at commit without a lock (a result must not wait for other results: the check stops at
-- the first unfinished job, about n·log n row visits over an operation's life); the event itself
-- is written under the event lock, once. Two transactions ending an operation's last two jobs at
-- the same instant may each see the other's job still running: the maintenance tick's sweep
-- (events::sweep_finished_operations) finishes those within a second.
create function event_operation_finish(p_operation uuid) returns void language plpgsql as $$
begin
    perform pg_advisory_xact_lock(7526466098475614208);
    if exists (select 1 from event where type = 'operation.finished' and operation_id = p_operation)
       or exists (select 1 from operation_job oj
                  where oj.operation_id = p_operation
                    and (select j.state from job j where j.id = oj.job_id) in ('queued', 'leased'))
       or not exists (select 1 from operation_job where operation_id = p_operation) then
        return;
    end if;
    perform event_emit('operation.finished', null, p_operation, null, (
        select jsonb_build_object(
            'operation_id', p_operation,
            'kind', (select kind from operation where id = p_operation),
            'status', case
                when count(*) filter (where j.state = 'failed') > 0 then 'failed'
                when count(*) filter (where j.state = 'canceled') > 0 then 'canceled'
                else 'succeeded' end,
            'machines', jsonb_build_object(
                'total', count(*),
                'succeeded', count(*) filter (where j.state = 'succeeded'),
                'failed', count(*) filter (where j.state in ('failed', 'canceled'))),
            'at', event_instant(coalesce(max(j.finished_at), now())))
        from operation_job oj join job j on j.id = oj.job_id
        where oj.operation_id = p_operation));
end $$;

create function event_operation_finished() returns trigger language plpgsql as $$
declare
    op uuid;
begin
    for op in select operation_id from operation_job where job_id = new.id loop
        -- Agents often end an operation's jobs in machine order, so the jobs next to this one
        -- (by key, both ways) answer almost every time; only then the whole operation. Scalar
        -- subqueries keep each a nested loop that stops at the first unfinished job.
        continue when exists (
            select 1 from (select oj.job_id from operation_job oj
                           where oj.operation_id = op and oj.machine_id > new.machine_id
                           order by oj.machine_id limit 32) near
            where (select j.state from job j where j.id = near.job_id) in ('queued', 'leased'));
        continue when exists (
            select 1 from (select oj.job_id from operation_job oj
                           where oj.operation_id = op and oj.machine_id < new.machine_id
                           order by oj.machine_id desc limit 32) near
            where (select j.state from job j where j.id = near.job_id) in ('queued', 'leased'));
        continue when exists (
            select 1 from operation_job oj
            where oj.operation_id = op
              and (select j.state from job j where j.id = oj.job_id) in ('queued', 'leased'));
        perform event_operation_finish(op);
    end loop;
    return null;
end $$;

-- The sweep's candidates: operations started since `since` (their uuid v7 ids are time-ordered)
-- and since the feed exists, without an `operation.finished` and with no job left.
create function event_unfinished_operations(since timestamptz, max_rows integer) returns setof uuid
language sql stable as $$
    select o.id from operation o
    where o.id >= (lpad(to_hex((extract(epoch from greatest(since,
                       (select coalesce(min(created_at), now()) from event))) * 1000)::bigint), 12, '0')
                   || '00000000000000000000')::uuid
      and not exists (select 1 from event e where e.type = 'operation.finished' and e.operation_id = o.id)
      and exists (select 1 from operation_job oj where oj.operation_id = o.id)
      and not exists (select 1 from operation_job oj
                      where oj.operation_id = o.id
                        and (select j.state from job j where j.id = oj.job_id) in ('queued', 'leased'))
    order by o.id
    limit max_rows
$$;

create constraint trigger event_operation_finished after update of state on job
    deferrable initially deferred
    for each row when (new.state in ('succeeded', 'failed', 'canceled')
                       and old.state in ('queued', 'leased'))
    execute function event_operation_finished();

-- Rollouts: a batch succeeded (progress), the rollout halted, or its state otherwise changed
-- (paused, resumed, succeeded, canceled).
create function event_rollout_batch() returns trigger language plpgsql as $$
begin
    perform event_emit('rollout.progressed', null, null, new.rollout_id,
        jsonb_build_object('rollout_id', new.rollout_id, 'batch_index', new.batch_index,
                           'wave', new.wave, 'batch_state', new.state,
                           'state', (select state from rollout where id = new.rollout_id),
                           'at', event_instant(coalesce(new.finished_at, new.updated_at))));
    return null;
end $$;

create constraint trigger event_rollout_batch after update of state on rollout_batch
    deferrable initially deferred
    for each row when (new.state = 'succeeded' and old.state is distinct from 'succeeded')
    execute function event_rollout_batch();

create function event_rollout() returns trigger language plpgsql as $$
begin
    if new.state = 'halted' then
        perform event_emit('rollout.halted', null, null, new.id,
            jsonb_build_object('rollout_id', new.id, 'state', new.state, 'reason', new.halted_reason,
                               'at', event_instant(new.updated_at)));
    else
        perform event_emit('rollout.progressed', null, null, new.id,
            jsonb_build_object('rollout_id', new.id, 'state', new.state, 'previous_state', old.state,
                               'at', event_instant(coalesce(new.finished_at, new.updated_at))));
    end if;
    return null;
end $$;

create constraint trigger event_rollout after update of state on rollout
    deferrable initially deferred
    for each row when (new.state is distinct from old.state)
    execute function event_rollout();

-- Every replica's LISTEN connection hears about new events (the payload is the largest new id; a
-- hint: replicas read the table). Once per statement.
create function event_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('hotpatch_events', (select max(id) from inserted)::text);
    return null;
end $$;

create trigger event_notify after insert on event referencing new table as inserted
    for each statement execute function event_notify();
