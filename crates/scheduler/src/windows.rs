//! Maintenance windows in local time (DESIGN §3 "Window").
