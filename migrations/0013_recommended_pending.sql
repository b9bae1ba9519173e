-- Whether a machine's last assessment lists a recommended update (critical or security). The
-- service decides it when it records an assessment (`AvailableUpdate::is_recommended` is the rule)
-- and stores the answer here, so the fleet summary counts compliance from a column instead of
-- restating the rule over the stored JSON.
alter table machine_inventory add column recommended_pending boolean not null default false;

-- Backfill of the assessments stored before this migration. This is the one place the rule is
-- written in SQL, for the old data only: every assessment recorded from now on carries the
-- service's answer.
--
-- The backfill changes no status a client sees (a summary counted the same from the JSON), so the
-- triggers that report changes are off while it runs: no `machine.status_changed` event and no
-- cache notification for each assessed machine. (Disabling a trigger is transactional: it is back
-- on when the migration commits, and other sessions never see it off, the table being locked.)
alter table machine_inventory disable trigger event_inventory;
alter table machine_inventory disable trigger status_notify_update;

update machine_inventory
set recommended_pending = true
where available_updates @? '$[*] ? (@.classification == "critical" || @.classification == "security")';

alter table machine_inventory enable trigger event_inventory;
alter table machine_inventory enable trigger status_notify_update;
