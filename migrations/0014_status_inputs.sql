-- Everything one machine's patch status is computed from, as one view, so that the statements
-- that read it (one machine, a page of machines, the version check behind `If-None-Match`) state
-- the joins once and differ only in their `where`.
--
-- Why a view and not one statement with `id = any($1)` for every caller: portals poll one machine
-- at a time, and planning this join takes several times longer than running it. A statement of
-- its own with `id = $1` gets a generic plan that PostgreSQL keeps per connection after a few
-- runs (its estimate equals the custom plan's), so a poll is executed without being planned; an
-- `any($1)` array of unknown length never qualifies and is planned on every call.
--
-- Versions: a machine's own rows by their `xmin`; the agent's liveness and the rollout place by
-- value (bookkeeping writes to those rows do not change an answer); the catalog and the
-- configurations by the counters of `status_epoch` (0006).
create view machine_status_inputs as
select m.id, m.os, m.platform, m.hotpatch_enabled, m.eligible,
       coalesce((m.eligibility->>'preview')::boolean, false) as preview,
       m.enrollment, m.os_build, m.timezone, m.updated_at,
       m.xmin::text as machine_v,
       ps.xmin::text as ps_v, ps.current_baseline_id, ps.latest_installed_id,
       ps.reboot_pending, ps.updated_at as ps_updated_at,
       inv.xmin::text as inv_v, inv.os_build as inv_os_build, inv.available_updates, inv.assessed_at,
       ag.machine_id is not null as has_agent, ag.last_seen_at, ag.health_reported_at,
       ag.health, md5(ag.health::text) as health_md5,
       ro.rollout_id, ro.rollout_state, ro.state as install_state, ro.batch_index, ro.window_start,
       ro.window_end, ro.attempts,
       mc.id as config_id, mc.body as config_body, ac.rank as config_rank,
       e.catalog_version, e.maintenance_version
from machine m
cross join status_epoch e
left join machine_patch_state ps on ps.machine_id = m.id
left join machine_inventory inv on inv.machine_id = m.id
left join machine_agent ag on ag.machine_id = m.id
-- The machine's latest unfinished rollout.
left join lateral (
    select rm.rollout_id, r.state as rollout_state, rm.state, rm.batch_index, rm.window_start,
           rm.window_end, rm.attempts
    from rollout_machine rm join rollout r on r.id = rm.rollout_id
    where rm.machine_id = m.id and r.state in ('running', 'paused', 'halted')
    order by rm.rollout_id desc limit 1) ro on true
left join lateral applicable_configuration(m.id, m.labels, m.region) ac on true
left join maintenance_configuration mc on mc.id = ac.configuration_id;
