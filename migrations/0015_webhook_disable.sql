-- Webhooks that keep failing are disabled: after 5 failed attempts in a row and no success for
-- 24 hours (the rule is hotpatch_domain::webhook_health), fan-out stops making deliveries for it
-- and the queued ones wait, until an operator re-enables it (POST /v1/webhooks/{id}/enable), which
-- also resets the run of failures.
alter table webhook
    add column disabled_at timestamptz,
    add column disabled_reason text,
    -- Failed attempts since the last success (or creation, or re-enabling).
    add column consecutive_failures integer not null default 0 check (consecutive_failures >= 0),
    -- The first failure of that run: "no success since".
    add column failing_since timestamptz,
    add constraint webhook_disabled_reason_check check ((disabled_at is null) = (disabled_reason is null)),
    add constraint webhook_failing_since_check check ((consecutive_failures = 0) = (failing_since is null));
