-- The fleet summary's inputs, one narrow row per machine, kept by triggers in the transaction of
-- every write of what they copy.
--
-- Why: the summary counts machines by everything their counts depend on (DESIGN §3 "Fleet
-- summary"), which took a join of three tables: `machine` (wide: image, eligibility reasons,
-- labels), `machine_patch_state` and `machine_inventory` (its updates lists). At a million machines
-- that join read well over a gigabyte and hashed two million rows for each summary. This table
-- holds only the columns the summary reads (and groups by), so a summary is one scan of about a
-- hundred bytes a machine and no join. Each machine has its own row, so the triggers add no
-- contention between writers: a write to a machine's rows updates that machine's class row.
create table machine_class (
    machine_id          uuid primary key references machine (id) on delete cascade,
    region              text not null,
    os                  text not null,
    platform            text not null,
    hotpatch_enabled    boolean not null,
    eligible            boolean not null,
    enrollment          text,
    labels              jsonb not null,
    current_baseline_id uuid,
    latest_installed_id uuid,
    reboot_pending      boolean not null default false,
    assessed            boolean not null default false,
    recommended_pending boolean not null default false
);

insert into machine_class (machine_id, region, os, platform, hotpatch_enabled, eligible, enrollment,
                           labels, current_baseline_id, latest_installed_id, reboot_pending,
                           assessed, recommended_pending)
select m.id, m.region, m.os, m.platform, m.hotpatch_enabled, m.eligible, m.enrollment, m.labels,
       ps.current_baseline_id, ps.latest_installed_id, coalesce(ps.reboot_pending, false),
       inv.machine_id is not null, coalesce(inv.recommended_pending, false)
from machine m
left join machine_patch_state ps on ps.machine_id = m.id
left join machine_inventory inv on inv.machine_id = m.id;

-- Machines: statement-level, so that an import of 10,000 machines is one insert here.
create function machine_class_from_machine() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        insert into machine_class (machine_id, region, os, platform, hotpatch_enabled, eligible,
                                   enrollment, labels)
        select id, region, os, platform, hotpatch_enabled, eligible, enrollment, labels from changed;
    else
        update machine_class c
        set region = n.region, os = n.os, platform = n.platform,
            hotpatch_enabled = n.hotpatch_enabled, eligible = n.eligible,
            enrollment = n.enrollment, labels = n.labels
        from changed n
        where c.machine_id = n.id
          and (c.region, c.os, c.platform, c.hotpatch_enabled, c.eligible, c.enrollment, c.labels)
              is distinct from
              (n.region, n.os, n.platform, n.hotpatch_enabled, n.eligible, n.enrollment, n.labels);
    end if;
    return null;
end $$;

create trigger machine_class_insert after insert on machine
    referencing new table as changed for each statement execute function machine_class_from_machine();
create trigger machine_class_update after update on machine
    referencing new table as changed for each statement execute function machine_class_from_machine();

-- Installed state.
create function machine_class_from_patch_state() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        update machine_class c
        set current_baseline_id = null, latest_installed_id = null, reboot_pending = false
        from changed o where c.machine_id = o.machine_id;
    else
        update machine_class c
        set current_baseline_id = n.current_baseline_id, latest_installed_id = n.latest_installed_id,
            reboot_pending = n.reboot_pending
        from changed n
        where c.machine_id = n.machine_id
          and (c.current_baseline_id, c.latest_installed_id, c.reboot_pending)
              is distinct from (n.current_baseline_id, n.latest_installed_id, n.reboot_pending);
    end if;
    return null;
end $$;

create trigger machine_class_insert after insert on machine_patch_state
    referencing new table as changed for each statement execute function machine_class_from_patch_state();
create trigger machine_class_update after update on machine_patch_state
    referencing new table as changed for each statement execute function machine_class_from_patch_state();
create trigger machine_class_delete after delete on machine_patch_state
    referencing old table as changed for each statement execute function machine_class_from_patch_state();

-- Assessments.
create function machine_class_from_inventory() returns trigger language plpgsql as $$
begin
    if tg_op = 'DELETE' then
        update machine_class c set assessed = false, recommended_pending = false
        from changed o where c.machine_id = o.machine_id;
    else
        update machine_class c set assessed = true, recommended_pending = n.recommended_pending
        from changed n
        where c.machine_id = n.machine_id
          and (c.assessed, c.recommended_pending) is distinct from (true, n.recommended_pending);
    end if;
    return null;
end $$;

create trigger machine_class_insert after insert on machine_inventory
    referencing new table as changed for each statement execute function machine_class_from_inventory();
create trigger machine_class_update after update on machine_inventory
    referencing new table as changed for each statement execute function machine_class_from_inventory();
create trigger machine_class_delete after delete on machine_inventory
    referencing old table as changed for each statement execute function machine_class_from_inventory();
