//! The reference hotpatch agent and the fleet simulator.
//!
//! An agent speaks the agent protocol of DESIGN §2–3 over HTTP only: it long-polls for its
//! machine's jobs, keeps their leases with heartbeats, and reports results, inventory and
//! health. What a job does on the machine is an [`executor::Executor`]: the
//! [`command::CommandExecutor`] runs an operator's program per job (the real machines' executor;
//! the contract is in the README), the [`sim::SimulatedMachine`] changes an in-memory machine,
//! and [`fleet::Fleet`] runs thousands of those in one process against a real server.
//!
//! - [`client`]: [`client::AgentClient`] (agent protocol) and [`client::FleetClient`] (operator
//!   calls for registration and the release catalog), with one error type.
//! - [`executor`]: the [`executor::Executor`] trait and the [`executor::JobOutcome`] it returns.
//! - [`command`]: the command executor and the answers its program may give.
//! - [`boot`]: the machine's boot marker, which tells a restart of the machine from one of the
//!   agent.
//! - [`sim`]: the simulated machine, and the release catalog it can start from.
//! - [`execlog`]: the execution log, one line per job whose work finished (fault tests read it).
//! - [`agent`]: the run loop of one machine, its retry policy and shared counters.
//! - [`spool`]: the durable memory of finished work (undelivered reports, finished jobs) that
//!   keeps a job from running twice because its report was late.
//! - [`fleet`]: the simulator.
//! - [`bench`]: the load harness of the dispatch path (`hotpatch-agent bench`).

#![forbid(unsafe_code)]

pub mod agent;
pub mod bench;
pub mod boot;
pub mod client;
pub mod command;
pub mod config;
pub mod execlog;
pub mod executor;
pub mod fleet;
pub mod sim;
pub mod spool;

pub use agent::{Agent, AgentConfig, AgentError, Progress, Stats};
pub use client::{AgentClient, ClientError, FleetClient};
pub use command::{CommandConfig, CommandExecutor};
pub use execlog::ExecutionLog;
pub use executor::{Executor, ExecutorError, JobOutcome};
pub use fleet::{Fleet, FleetConfig, FleetError};
pub use sim::{SimConfig, SimulatedMachine};
pub use spool::{Spool, SpoolError};
