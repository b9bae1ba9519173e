-- Two rules the queries of several resources share, written once so that no query restates them.

-- The maintenance configuration that governs a machine (DESIGN §3, "Maintenance configuration"):
-- one naming the machine beats one matching all its labels (a non-empty label scope), which
-- beats one listing its region; among equals the oldest, then the smallest id. `rank` says how
-- it matched (1 machine id, 2 labels, 3 region). The same rule in Rust is
-- `hotpatch_domain::schedule::applicable_configuration`; a store test checks that they agree.
-- A `stable` SQL function of one `select`: the planner inlines it into the calling query, so a
-- lateral join over many machines costs what the query written out did.
create function applicable_configuration(machine_id uuid, labels jsonb, region text)
returns table (configuration_id uuid, rank integer)
language sql stable parallel safe
as $$
    select c.id,
           case when applicable_configuration.machine_id = any(c.scope_machine_ids) then 1
                when c.scope_labels <> '{}'::jsonb and applicable_configuration.labels @> c.scope_labels then 2
                else 3 end
    from maintenance_configuration c
    where applicable_configuration.machine_id = any(c.scope_machine_ids)
       or (c.scope_labels <> '{}'::jsonb and applicable_configuration.labels @> c.scope_labels)
       or applicable_configuration.region = any(c.scope_regions)
    order by 2, c.created_at, c.id
    limit 1
$$;

-- Whether a selector (bulk assessments, rollouts: `{machine_ids?, labels?, regions?}`) names a
-- machine: every given part must match; a part given as null matches every machine. Immutable
-- and inlined, so `id = any(...)` still reaches the primary key's index.
create function selector_matches(
    machine_id uuid, labels jsonb, region text,
    selected_ids uuid[], selected_labels jsonb, selected_regions text[])
returns boolean
language sql immutable parallel safe
as $$
    select (selected_ids is null or machine_id = any(selected_ids))
       and (selected_labels is null or labels @> selected_labels)
       and (selected_regions is null or region = any(selected_regions))
$$;
