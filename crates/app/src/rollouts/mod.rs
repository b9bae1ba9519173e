//! Rollouts (DESIGN §1 "Orchestration"): a release taken to a selection of machines
//! availability-first, and the dispatcher that advances running rollouts ([`dispatcher`]).

pub mod dispatcher;
