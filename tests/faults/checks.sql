-- The fault suite's verdict, read from the database once everything is quiet. One row per check:
-- name | count of offending rows | hard (must be 0) or info | what it means.
-- psql variables: agent_kills (simulator processes killed with SIGKILL: each may leave one
-- finished job spooled but not yet in the execution log, see README).

with
final(state) as (values ('succeeded'), ('failed'), ('canceled')),
svc_now as (
    select now() + make_interval(secs => coalesce((select offset_ms from service_clock), 0) / 1000.0) as t
),
-- Per job: how many times it entered a final state, how many times it left one.
ended as (
    select j.id,
           count(a.seq) filter (where a.new_state in (select state from final)) as entered,
           count(a.seq) filter (where a.old_state in (select state from final)) as left_final
    from job j left join faults.job_audit a on a.job_id = j.id
    group by j.id
),
-- Active disruptive jobs per machine after each change, in the order the changes happened.
disruptive as (
    select machine_id,
           sum((case when new_state in ('queued', 'leased') then 1 else 0 end)
             - (case when old_state in ('queued', 'leased') then 1 else 0 end))
               over (partition by machine_id order by seq) as active
    from faults.job_audit
    where kind in ('install', 'rollback', 'reboot')
),
op_state as (
    select o.id,
           count(*) filter (where j.state in ('queued', 'leased')) as open_jobs,
           (select count(*) from event e where e.type = 'operation.finished' and e.operation_id = o.id) as finished_events
    from operation o join operation_job oj on oj.operation_id = o.id join job j on j.id = oj.job_id
    group by o.id
),
commit_order as (
    select id, pg_xact_commit_timestamp(xmin) as ts,
           lag(pg_xact_commit_timestamp(xmin)) over (order by id) as prev_ts
    from event
),
seen_order as (
    select event_id, lag(event_id) over (order by n) as prev from faults.seen
),
seen_range as (select coalesce(max(event_id), 0) as hi from faults.seen),
executed_installs as (select * from faults.executed where kind = 'install')
select 'jobs not in a final state', count(*), 'hard',
       'queued or leased jobs once the rollouts were over and the queue had drained'
from job where state in ('queued', 'leased')
union all
select 'jobs ended other than once', count(*), 'hard',
       'final jobs whose state became final zero or several times (job_audit)'
from ended e join job j on j.id = e.id where j.state in (select state from final) and e.entered <> 1
union all
select 'jobs that left a final state', count(*), 'hard', 'a final state changed again (job_audit)'
from ended where left_final > 0
union all
select 'stuck leases', count(*), 'hard', 'leased jobs whose lease expired more than 5 s ago (service clock)'
from job, svc_now where state = 'leased' and lease_expires_at < svc_now.t - interval '5 seconds'
union all
select 'machines with two active disruptive jobs', count(distinct machine_id), 'hard',
       'at some point (job_audit, in change order) or now'
from disruptive where active > 1
union all
select 'operations stuck', count(*), 'hard',
       'operations whose jobs all ended without exactly one operation.finished event, or with one while a job is open'
from op_state where (open_jobs = 0 and finished_events <> 1) or (open_jobs > 0 and finished_events > 0)
union all
select 'rollouts not succeeded', count(*), 'hard', 'every rollout the suite started must end succeeded'
from rollout where state <> 'succeeded'
union all
select 'rollout machines stuck', count(*), 'hard', 'rollout machines queued on a job that ended, or not final in a succeeded rollout'
from rollout_machine rm join rollout r on r.id = rm.rollout_id left join job j on j.id = rm.job_id
where (rm.state = 'queued' and j.state in (select state from final))
   or (r.state = 'succeeded' and rm.state in ('pending', 'queued'))
union all
select 'installs succeeded twice for a machine in a rollout', count(*), 'hard', 'succeeded install jobs per (rollout, machine) > 1'
from (select 1 from job where kind = 'install' and state = 'succeeded' and rollout_id is not null
      group by rollout_id, machine_id having count(*) > 1) x
union all
select 'rollout events missing or doubled', count(*), 'hard',
       'succeeded rollouts and batches without exactly one rollout.progressed event of their success'
from (
    select r.id from rollout r where r.state = 'succeeded' and (
        select count(*) from event e where e.type = 'rollout.progressed' and e.rollout_id = r.id
          and e.data ->> 'state' = 'succeeded' and e.data ? 'previous_state') <> 1
    union all
    select b.rollout_id from rollout_batch b where b.state = 'succeeded' and (
        select count(*) from event e where e.type = 'rollout.progressed' and e.rollout_id = b.rollout_id
          and (e.data ->> 'batch_index')::int = b.batch_index and e.data ->> 'batch_state' = 'succeeded') <> 1
) x
union all
select 'events out of commit order', count(*), 'hard',
       'an event id whose transaction committed before the previous id''s (track_commit_timestamp)'
from commit_order where ts < prev_ts
union all
select 'events without a commit timestamp', count(*), 'hard', 'track_commit_timestamp must be on for the previous check'
from commit_order where ts is null
union all
select 'events the reader received twice or out of order', count(*), 'hard',
       'GET /v1/events across reconnections (Last-Event-ID): ids must strictly increase'
from seen_order where event_id <= prev
union all
select 'events the reader missed', count(*), 'hard',
       'stored event ids up to the last it received (it read from the start) it never received'
from event, seen_range where event.id <= seen_range.hi
  and not exists (select 1 from faults.seen s where s.event_id = event.id)
union all
select 'events the reader got that are not stored', count(*), 'hard', 'ids received but absent from the table'
from faults.seen s where not exists (select 1 from event e where e.id = s.event_id)
union all
select 'installs executed twice', count(*), 'hard', 'install job ids in the execution log more than once'
from (select job_id from executed_installs group by job_id having count(*) > 1) x
union all
select 'succeeded installs not in the execution log', count(*),
       case when count(*) > :agent_kills then 'hard' else 'info' end,
       'at most one per simulator SIGKILL (' || :agent_kills || '): spooled, then killed before the log line'
from job j where j.kind = 'install' and j.state = 'succeeded'
  and not exists (select 1 from executed_installs x where x.job_id = j.id)
union all
select 'logged installs the database has not succeeded', count(*), 'info',
       'work finished on the machine, the job ended otherwise (e.g. failed after its attempts ran out)'
from executed_installs x join job j on j.id = x.job_id where j.state <> 'succeeded'
union all
select 'install jobs failed', count(*), 'info', 'failed installs (their errors are printed below when any)'
from job where kind = 'install' and state = 'failed';
