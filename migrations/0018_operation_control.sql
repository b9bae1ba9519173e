-- Operations an operator can see and stop (`GET /v1/operations`, `POST /v1/operations/{id}/cancel`),
-- and jobs that end `expired` when no agent claims them in time, so operations finish.

-- A job of an operation or a periodic assessment that stays queued past the time-to-live
-- (`HOTPATCH_JOB_TTL_SECS`, counted from its creation) ends `expired`, with the reason in `error`:
-- a machine without a connected agent no longer holds an operation open, nor blocks its next
-- install (the one-active-disruptive-job index covers queued jobs). Rollout jobs are not
-- expired this way: the dispatcher takes back a queued install whose window passed.
alter table job drop constraint job_state_check;
alter table job add constraint job_state_check
    check (state in ('queued', 'leased', 'succeeded', 'failed', 'canceled', 'expired'));
alter table job drop constraint job_finished_when_final;
alter table job add constraint job_finished_when_final
    check ((state in ('succeeded', 'failed', 'canceled', 'expired')) = (finished_at is not null));

-- The expiry pass's index: queued jobs outside rollouts, oldest first.
create index job_unclaimed_idx on job (created_at) where state = 'queued' and rollout_id is null;

-- An operation's status from its jobs' states, the rule of `OperationStatus::from_counts` written
-- once for SQL, so `GET /v1/operations?status=` filters where it pages (a store test checks the
-- two agree). Failures (and expiries) win over cancellations; an operation without jobs succeeded.
create function operation_status(queued bigint, leased bigint, succeeded bigint, failed bigint, canceled bigint,
                                 expired bigint)
returns text language sql immutable as $$
    select case
        when queued + leased = 0 and failed + expired > 0 then 'failed'
        when queued + leased = 0 and canceled > 0 then 'canceled'
        when queued + leased = 0 then 'succeeded'
        when leased + succeeded + failed + canceled + expired = 0 then 'queued'
        else 'running' end
$$;

-- `?created_by=`: a pipeline's own operations, newest first.
create index operation_created_by_idx on operation (created_by, id desc);

-- `operation.finished` when the last job ends, expired included; an expired job counts as failed.
create or replace function event_operation_finish(p_operation uuid) returns void language plpgsql as $$
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
            -- Every job has ended (checked above): the rule of `operation_status`, with none queued.
            'status', operation_status(0, 0, count(*) filter (where j.state = 'succeeded'),
                                       count(*) filter (where j.state = 'failed'),
                                       count(*) filter (where j.state = 'canceled'),
                                       count(*) filter (where j.state = 'expired')),
            'machines', jsonb_build_object(
                'total', count(*),
                'succeeded', count(*) filter (where j.state = 'succeeded'),
                'failed', count(*) filter (where j.state in ('failed', 'canceled', 'expired'))),
            'at', event_instant(coalesce(max(j.finished_at), now())))
        from operation_job oj join job j on j.id = oj.job_id
        where oj.operation_id = p_operation));
end $$;

drop trigger event_operation_finished on job;
create constraint trigger event_operation_finished after update of state on job
    deferrable initially deferred
    for each row when (new.state in ('succeeded', 'failed', 'canceled', 'expired')
                       and old.state in ('queued', 'leased'))
    execute function event_operation_finished();
