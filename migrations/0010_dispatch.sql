-- The dispatch path's share of the change feed, made cheaper (same events, same order).
--
-- `event_instant` was declared `immutable` over `to_char`, which is only `stable`: PostgreSQL does
-- not inline a function declared less volatile than its body, so every call ran the SQL-function
-- executor (parse, plan and execute its body, per call). An agent's first request writes an
-- `agent.connected` event with two instants, so a fleet coming online (or the queue benchmark's
-- 10,000 fresh agents) paid two of those per agent. Declared `stable` (what its body is), it is
-- inlined into the calling expression and planned once with it.
create or replace function event_instant(t timestamptz) returns jsonb language sql stable as $$
    select to_jsonb(to_char(t at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS')
        || coalesce('.' || nullif(rtrim(to_char(t at time zone 'UTC', 'US'), '0'), ''), '') || 'Z')
$$;
