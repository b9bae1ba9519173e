//! The reference hotpatch agent and the fleet simulator.
//!
//! An agent speaks the agent protocol of DESIGN §2–3 over HTTP only: it long-polls for its
//! machine's jobs, keeps their leases with heartbeats, and reports results, inventory and
//! health. What a job does on the machine is an [`executor::Executor`]; today the only one is
//! [`sim::SimulatedMachine`], and [`fleet::Fleet`] runs thousands of them in one process
//! against a real server.
//!
//! - [`client`]: [`client::AgentClient`] (agent protocol) and [`client::FleetClient`] (operator
//!   calls for registration), with one error type.
//! - [`executor`]: the [`executor::Executor`] trait and the [`executor::JobOutcome`] it returns.
//! - [`sim`]: the simulated machine.
//! - [`execlog`]: the execution log, one line per job whose work finished (fault tests read it).
//! - [`agent`]: the run loop of one machine, its retry policy and shared counters.
//! - [`spool`]: the durable memory of finished work (undelivered reports, finished jobs) that
//!   keeps a job from running twice because its report was late.
//! - [`fleet`]: the simulator.
//! - [`bench`]: the load harness of the dispatch path (`hotpatch-agent bench`).

#![forbid(unsafe_code)]

pub mod agent;
pub mod bench;
pub mod client;
pub mod execlog;
pub mod executor;
pub mod fleet;
pub mod sim;
pub mod spool;

pub use agent::{Agent, AgentConfig, AgentError, Progress, Stats};
pub use client::{AgentClient, ClientError, FleetClient};
pub use execlog::ExecutionLog;
pub use executor::{Executor, ExecutorError, JobOutcome};
pub use fleet::{Fleet, FleetConfig, FleetError};
pub use sim::{SimConfig, SimulatedMachine};
pub use spool::{Spool, SpoolError};
