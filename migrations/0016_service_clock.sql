-- The movable service clock (HOTPATCH_CLOCK_CONTROL, tests and demos): its offset from the
-- system clock, kept here so every replica and every restart reads the same clock.
create table service_clock (
    singleton boolean primary key default true check (singleton),
    offset_ms bigint not null,
    set_at timestamptz not null default now()
);
