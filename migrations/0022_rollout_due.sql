-- The rollout dispatcher's candidates (machines pending in running rollouts whose window has
-- started) by an index on the start of their window, so that a pass reads the machines that
-- are due and not every machine of every batch: a rollout of a million machines had the
-- dispatcher read all of them each second (2.7 s a pass) for none due.
create index rollout_machine_due_idx on rollout_machine (window_start) where state = 'pending';
