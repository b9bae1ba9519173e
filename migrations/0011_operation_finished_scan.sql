-- `operation.finished` is checked at each job's end by looking for a job of the operation still
-- queued or leased. The check looked at 32 neighbours (by machine) on each side and then scanned
-- the operation from its first machine. Once the early machines are done, that last scan read
-- every finished job before the first open one. It ran whenever the 64 neighbours were all
-- done, which results recorded in batches make common. An operation of 20,000 jobs then cost 1 ms
-- per result instead of 0.13 ms.
--
-- The check now walks outwards from the job's own machine, upwards and then downwards, each walk
-- stopping at the first open job. A fleet finishing in machine order finds one right above;
-- in random order the expected walk is (jobs / open jobs), about n·ln n over the operation's life.
-- The event itself is still written by `event_operation_finish`, under the event lock, once.
--
-- Bitmap scans are off in the function: the planner guesses a few dozen rows in a key range of
-- one operation and would read the whole range with a bitmap scan and sort it, the very scan this
-- replaces; an index scan in key order stops at the first open job.
create or replace function event_operation_finished() returns trigger language plpgsql
set enable_bitmapscan = off as $$
declare
    op uuid;
begin
    for op in select operation_id from operation_job where job_id = new.id loop
        -- `order by … limit 1`: an index scan from this machine outwards, not from the start.
        continue when exists (
            select 1 from operation_job oj
            where oj.operation_id = op and oj.machine_id > new.machine_id
              and (select j.state from job j where j.id = oj.job_id) in ('queued', 'leased')
            order by oj.machine_id
            limit 1);
        continue when exists (
            select 1 from operation_job oj
            where oj.operation_id = op and oj.machine_id < new.machine_id
              and (select j.state from job j where j.id = oj.job_id) in ('queued', 'leased')
            order by oj.machine_id desc
            limit 1);
        perform event_operation_finish(op);
    end loop;
    return null;
end $$;
