-- Evidence the fault suite needs and the schema does not keep: every change of a job's state, in
-- the order the changes happened. Installed in the suite's own database after the first replica
-- has run the migrations and before any machine exists. A plain AFTER ROW trigger: it writes one
-- row in the transaction that changes the job, so a change rolled back leaves no trace either.

create schema faults;

create table faults.job_audit (
    seq        bigserial primary key,
    job_id     uuid not null,
    machine_id uuid not null,
    kind       text not null,
    old_state  text,            -- null: the job was inserted
    new_state  text not null,
    attempt    integer not null,
    at         timestamptz not null default clock_timestamp()
);

create function faults.job_audit() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' or old.state is distinct from new.state then
        insert into faults.job_audit (job_id, machine_id, kind, old_state, new_state, attempt)
        values (new.id, new.machine_id, new.kind,
                case when tg_op = 'UPDATE' then old.state end, new.state, new.attempt);
    end if;
    return null;
end $$;

create trigger zz_faults_job_audit after insert or update of state on job
    for each row execute function faults.job_audit();

-- Filled at the end: the simulators' execution log (`--execution-log`) and the ids the
-- change-feed reader received, in arrival order.
create table faults.executed (job_id uuid not null, kind text not null, outcome text not null, attempt integer not null);
create table faults.seen (n bigserial primary key, event_id bigint not null);
